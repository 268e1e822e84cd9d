/**
 * A job's log as the log view holds it: raw lines indexed as text arrives, a slice of work at a time
 * (no task long enough to stall the page), the colour codes in force at each line's start, and a
 * search over every line, also a slice at a time. Lines are parsed and coloured only when drawn.
 */

/** A row of the log: a line as the log file has it, or a section's header (`==> title <==`). */
export type Row = string | { title: string };

const ESC = String.fromCharCode(27);
/** A colour (SGR) code: ESC `[` numbers `m`. */
const SGR = new RegExp(`${ESC}\\[([0-9;]*)m`, "g");
/** Any ANSI colour or cursor code, stripped for searching: people search for what they see. */
const ANSI_CODE = new RegExp(`${ESC}\\[[0-9;]*[A-Za-z]`, "g");
/** The prefix the server writes on each line: `<ISO time> <out|err> `. */
const PREFIX = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*Z (?:out|err) /;
/** Text indexed in one go: a slice of work stays a few milliseconds long. */
const PIECE = 64 * 1024;
/** Lines searched between two looks at the clock. */
const SEARCH_BATCH = 512;

/**
 * The colour codes in force after `line`, given those in force before it: the codes since the last
 * reset, replayed before a line drawn on its own. Kept short: a job that sets colours without ever
 * resetting keeps its last few.
 */
export function colourAfter(before: string, line: string): string {
  const last = line.lastIndexOf(ESC);
  if (last === -1) return before;
  // Most coloured lines end their colours: a reset last leaves nothing in force, whatever came before.
  if (line.startsWith("[0m", last + 1) || line.startsWith("[m", last + 1)) return "";
  let state = before;
  SGR.lastIndex = 0;
  for (let m = SGR.exec(line); m !== null; m = SGR.exec(line)) {
    const first = m[1]!.split(";", 1)[0]!;
    // `ESC[m` and `ESC[0;...m` reset everything first.
    state = first === "" || Number(first) === 0 ? m[0] : state + m[0];
  }
  if (state.length > 200) state = (state.match(SGR) ?? []).slice(-8).join("");
  return state === `${ESC}[m` || state === `${ESC}[0m` ? "" : state;
}

/** A line's text as searched: without its time prefix and colour codes, lowered. */
export function searchText(line: string): string {
  const prefix = PREFIX.exec(line);
  const text = prefix ? line.slice(prefix[0].length) : line;
  return (text.includes(ESC) ? text.replace(ANSI_CODE, "") : text).toLowerCase();
}

export class LogLines {
  /** Rows, oldest first; the first is row number `base` (rows dropped off the front move it on). */
  rows: Row[] = [];
  /** The colour codes in force at each row's start, "" for none; parallel to `rows`. */
  colours: string[] = [];
  base = 0;
  /** Lines dropped off the front to keep at most `max` rows. */
  dropped = 0;
  /** A section starts near its end (the server's `from byte N` in its header). */
  tailed = false;
  /** The search: the lowered needle ("" for none), the matching rows (numbers), how far it got. */
  needle = "";
  matches: number[] = [];
  private searched = 0;
  /** The header of the section being searched, until one of its lines matches (shown with it). */
  private header = -1;
  private queue: string[] = [];
  /** The end of the text so far when it does not end a line. */
  private partial = "";
  private colour = "";

  constructor(readonly max: number) {}

  /** Text as it arrives; indexed by `work`. */
  push(text: string): void {
    if (text !== "") this.queue.push(text);
  }

  /** Text arrived and not yet indexed, or rows not yet searched. */
  get busy(): boolean {
    return this.queue.length > 0 || (this.needle !== "" && this.searched < this.base + this.rows.length);
  }

  /** The rows shown: every row, or the search's. */
  get count(): number {
    return this.needle ? this.matches.length : this.rows.length;
  }

  /** The `i`-th row shown, with its number (for caching its drawing) and the colours at its start. */
  shown(i: number): { n: number; row: Row; colour: string } | undefined {
    const n = this.needle ? this.matches[i] : this.base + i;
    if (n === undefined || n < this.base) return undefined;
    const row = this.rows[n - this.base];
    return row === undefined ? undefined : { n, row, colour: this.colours[n - this.base]! };
  }

  /** Starts searching anew (case-insensitive; "" shows every row). */
  search(needle: string): void {
    this.needle = needle.toLowerCase();
    this.matches = [];
    this.searched = this.base;
    this.header = -1;
  }

  /**
   * Indexes queued text, then searches new rows, until `now()` passes `deadline`; true when nothing
   * is left. Call again (after yielding to the browser) while it returns false.
   */
  work(deadline: number, now: () => number): boolean {
    while (this.queue.length > 0) {
      const text = this.queue[0]!;
      if (text.length > PIECE) {
        // A big chunk goes in pieces, each cut after a line's end.
        const cut = text.indexOf("\n", PIECE);
        const head = cut === -1 ? text : text.slice(0, cut + 1);
        this.queue[0] = text.slice(head.length);
        if (this.queue[0] === "") this.queue.shift();
        this.index(head);
      } else {
        this.queue.shift();
        this.index(text);
      }
      if (now() > deadline) return false;
    }
    while (this.needle && this.searched < this.base + this.rows.length) {
      const end = Math.min(this.base + this.rows.length, this.searched + SEARCH_BATCH);
      for (let n = this.searched; n < end; n++) {
        const row = this.rows[n - this.base]!;
        if (typeof row !== "string") this.header = n;
        else if (searchText(row).includes(this.needle)) {
          if (this.header !== -1) this.matches.push(this.header);
          this.header = -1;
          this.matches.push(n);
        }
      }
      this.searched = end;
      if (now() > deadline) return !this.busy;
    }
    return true;
  }

  private index(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("==> ") && line.endsWith(" <==")) {
        const title = line.slice(4, -4);
        if (/ from byte \d+$/.test(title)) this.tailed = true;
        this.rows.push({ title });
        this.colours.push("");
        // Each section (attempt, undo) starts with no colour, as its process did.
        this.colour = "";
      } else {
        this.rows.push(line);
        this.colours.push(this.colour);
        this.colour = colourAfter(this.colour, line);
      }
    }
    this.trim();
  }

  /** The oldest rows go past `max`; the header of the section they were cut from stays first. */
  private trim(): void {
    const extra = this.rows.length - this.max;
    if (extra <= 0) return;
    let header: Row | undefined;
    let lines = 0;
    for (let i = 0; i < extra; i++) {
      const row = this.rows[i]!;
      if (typeof row === "string") lines++;
      else header = row;
    }
    this.rows.splice(0, extra);
    this.colours.splice(0, extra);
    this.base += extra;
    this.dropped += lines;
    if (header && typeof this.rows[0] === "string") {
      this.rows[0] = header;
      this.colours[0] = "";
      this.dropped++;
    }
    if (this.needle) {
      let keep = 0;
      while (keep < this.matches.length && this.matches[keep]! <= this.base) keep++;
      this.matches.splice(0, keep);
      this.searched = Math.max(this.searched, this.base + 1);
    }
  }
}
