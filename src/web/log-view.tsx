/**
 * A run's job output, tailing live: one section per attempt, cleanup and undo (the server's
 * `==> step (attempt N) <==` headers), ANSI colours rendered, the newest lines kept. Only the rows in
 * view are in the page (rows of one fixed height, so which ones are in view is arithmetic).
 */
import { AnsiUp } from "ansi_up";
import { useEffect, useRef, useState } from "preact/hooks";
import { readStream, runPath } from "./api.js";

/** Lines kept in memory; the whole log is a link away. */
const MAX_LINES = 100_000;
/** How much of each attempt's log is read at first: its end, so a 100 MB log opens at once. */
const TAIL_BYTES = 2 * 1024 * 1024;
/** The height of a row in pixels (the stylesheet's `.log-row`): lines do not wrap, the box scrolls sideways. */
const ROW = 18;
/** Rows drawn beyond the visible ones, above and below, so a quick scroll shows no gap. */
const OVERSCAN = 40;

/** An ANSI colour or cursor code: ESC, `[`, numbers, a letter. */
const ANSI_CODE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g");

interface Line {
  time: string;
  stderr: boolean;
  html: string;
  text: string;
}

interface Section {
  title: string;
  lines: Line[];
  ansi: AnsiUp;
}

function newSection(title: string): Section {
  const ansi = new AnsiUp();
  ansi.escape_html = true;
  ansi.use_classes = true;
  return { title, lines: [], ansi };
}

/** A line as the job's log file has it: `<ISO time> <out|err> <text>`. */
function parseLine(section: Section, raw: string): Line {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*Z) (out|err) (.*)$/.exec(raw);
  const text = match ? match[3]! : raw;
  const time = match ? new Date(match[1]!).toLocaleTimeString() : "";
  // Colour codes stripped for searching: people search for what they see.
  const plain = text.replace(ANSI_CODE, "");
  return { time, stderr: match?.[2] === "err", html: section.ansi.ansi_to_html(text), text: plain };
}

export function LogView(props: { run: string; job?: string | undefined }) {
  const sections = useRef<Section[]>([]);
  const [, setVersion] = useState(0);
  const [state, setState] = useState<"loading" | "live" | "ended" | "failed">("loading");
  const [error, setError] = useState("");
  const [dropped, setDropped] = useState(0);
  const [filter, setFilter] = useState("");
  const box = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  const lastTop = useRef(0);

  // Reading each file from its start, once asked to.
  const [whole, setWhole] = useState(false);
  const query = new URLSearchParams(props.job ? { job: props.job } : {});
  const raw = `/api/v1${runPath(props.run, "/logs")}?${query}`;
  const source = `${raw}&follow=1${whole ? "" : `&tail=${TAIL_BYTES}`}`;

  useEffect(() => {
    sections.current = [];
    setDropped(0);
    setState("loading");
    follow.current = true;
    lastTop.current = 0;
    const aborted = new AbortController();
    let pending = "";
    let frame = 0;
    let total = 0;
    const flush = () => {
      frame = 0;
      setVersion((v) => v + 1);
    };
    readStream(
      source,
      (text) => {
        setState("live");
        pending += text;
        const end = pending.lastIndexOf("\n");
        if (end === -1) return;
        const lines = pending.slice(0, end).split("\n");
        pending = pending.slice(end + 1);
        // A big chunk (a long log read from its start) is mostly lines that would be dropped at once:
        // those are only counted, never parsed or coloured.
        const skip = lines.length - MAX_LINES;
        let skipped = 0;
        lines.forEach((line, i) => {
          const header = /^==> (.*) <==$/.exec(line);
          if (header) {
            sections.current.push(newSection(header[1]!));
            return;
          }
          if (i < skip) {
            skipped++;
            return;
          }
          if (sections.current.length === 0) sections.current.push(newSection(""));
          const section = sections.current.at(-1)!;
          section.lines.push(parseLine(section, line));
          total++;
        });
        if (skipped > 0) setDropped((d) => d + skipped);
        // The oldest lines go first; a section left empty goes with them.
        let extra = total - MAX_LINES;
        if (extra > 0) {
          total -= extra;
          setDropped((d) => d + extra);
          while (extra > 0 && sections.current.length > 0) {
            const first = sections.current[0]!;
            const cut = Math.min(extra, first.lines.length);
            first.lines.splice(0, cut);
            extra -= cut;
            if (first.lines.length === 0 && sections.current.length > 1) sections.current.shift();
          }
        }
        // Sections whose every line was dropped go too (their header is all that is left of them).
        while (sections.current.length > 1 && sections.current[0]!.lines.length === 0)
          sections.current.shift();
        // Many chunks in a frame are drawn once.
        if (!frame) frame = requestAnimationFrame(flush);
      },
      aborted.signal,
    ).then(
      () => {
        flush();
        setState("ended");
      },
      (failure: Error) => {
        if (aborted.signal.aborted) return;
        setError(failure.message);
        setState("failed");
      },
    );
    return () => {
      aborted.abort();
      cancelAnimationFrame(frame);
    };
  }, [source]);

  // What part of the box is in view: its scroll position and height, read when they change.
  const [view, setView] = useState({ top: 0, height: 800 });
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setView({ top: el.scrollTop, height: el.clientHeight || 800 });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // Stay at the bottom while the reader is there, as `tail -f` does.
  useEffect(() => {
    const el = box.current;
    if (follow.current && el && el.scrollTop + el.clientHeight < el.scrollHeight)
      el.scrollTop = el.scrollHeight;
  });

  const needle = filter.toLowerCase();
  const rows: ({ title: string } | Line)[] = [];
  for (const section of sections.current) {
    const lines = needle ? section.lines.filter((l) => l.text.toLowerCase().includes(needle)) : section.lines;
    if (section.title && (lines.length > 0 || !needle)) rows.push({ title: section.title });
    for (const line of lines) rows.push(line);
  }
  const first = Math.max(0, Math.floor(view.top / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW) + OVERSCAN);
  return (
    <section class="log" aria-label="Log">
      <div class="log-bar">
        <h2>Log{props.job ? ` of ${props.job}` : ""}</h2>
        <span class="log-state" data-state={state}>
          {state === "live"
            ? "● following"
            : state === "ended"
              ? "end of log"
              : state === "failed"
                ? error
                : "…"}
        </span>
        <label>
          Search{" "}
          <input type="search" value={filter} onInput={(event) => setFilter(event.currentTarget.value)} />
        </label>
        <a href={raw} target="_blank" rel="noopener">
          Whole log
        </a>
      </div>
      {sections.current.some((s) => / from byte \d+$/.test(s.title)) && (
        <p class="hint">
          Long sections start near their end.{" "}
          <button type="button" class="link" onClick={() => setWhole(true)}>
            Read them from their start
          </button>
        </p>
      )}
      {dropped > 0 && <p class="hint">{dropped} earlier lines are not shown here: open the whole log.</p>}
      <div
        class="log-body"
        ref={box}
        onScroll={(event) => {
          const el = event.currentTarget;
          // Only a move up stops following: the box growing between a scroll and its event does not.
          if (el.scrollTop < lastTop.current - 4) follow.current = false;
          if (el.scrollTop + el.clientHeight >= el.scrollHeight - 8) follow.current = true;
          lastTop.current = el.scrollTop;
          setView({ top: el.scrollTop, height: el.clientHeight });
        }}
      >
        {rows.length === 0 && state !== "loading" && <p class="empty">No output yet.</p>}
        <div class="log-rows" style={{ height: `${rows.length * ROW}px` }}>
          <div style={{ transform: `translateY(${first * ROW}px)` }}>
            {rows.slice(first, last).map((row, i) =>
              "title" in row ? (
                <h3 class="log-row log-head" key={first + i}>
                  {row.title}
                </h3>
              ) : (
                <div class={row.stderr ? "log-row line stderr" : "log-row line"} key={first + i}>
                  <span class="t">{row.time}</span>
                  {/* ansi_up escapes the text: only its own colour spans are markup. */}
                  <span class="x" dangerouslySetInnerHTML={{ __html: row.html }} />
                </div>
              ),
            )}
          </div>
        </div>
      </div>
    </section>
  );
}
