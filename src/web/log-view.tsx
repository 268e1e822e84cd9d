/**
 * A run's job output, tailing live: one section per attempt, cleanup and undo (the server's
 * `==> step (attempt N) <==` headers), ANSI colours rendered, the newest lines kept. The text is
 * indexed and searched a slice at a time (log-lines.ts), yielding to the browser between slices; only
 * the rows in view are parsed, coloured and in the page (rows of one fixed height, so which ones are
 * in view is arithmetic).
 */
import { AnsiUp } from "ansi_up";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { readStream, runPath } from "./api.js";
import { LogLines, type Row } from "./log-lines.js";

/** Lines kept in memory; the whole log is a link away. */
const MAX_LINES = 100_000;
/** How much of each attempt's log is read at first: its end, so a 100 MB log opens at once. */
const TAIL_BYTES = 2 * 1024 * 1024;
/** The height of a row in pixels (the stylesheet's `.log-row`): lines do not wrap, the box scrolls sideways. */
const ROW = 18;
/** Rows drawn beyond the visible ones, above and below, so a quick scroll shows no gap. */
const OVERSCAN = 12;
/** How long one slice of indexing or searching may run before the browser gets the thread back. */
const SLICE_MS = 8;
/** The least time between two draws while text arrives. */
const DRAW_MS = 100;
/** Drawn lines kept for redrawing (a scroll back and forth does not colour them again). */
const DRAWN_KEPT = 2_000;

/** A line as the job's log file has it: `<ISO time> <out|err> <text>`. */
const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*Z) (out|err) /;

interface Drawn {
  time: string;
  stderr: boolean;
  html: string;
}

const ansi = new AnsiUp();
ansi.escape_html = true;
ansi.use_classes = true;

/** The last second formatted: lines come in bursts, most share their second with the one before. */
let second = { iso: "", text: "" };
function timeOf(iso: string): string {
  const key = iso.slice(0, 19);
  if (second.iso !== key) second = { iso: key, text: new Date(iso).toLocaleTimeString() };
  return second.text;
}

/** A line parsed and coloured, starting with the colours in force before it (`colour`). */
function draw(raw: string, colour: string): Drawn {
  const match = LINE.exec(raw);
  const text = match ? raw.slice(match[0].length) : raw;
  // toLocaleTimeString with no arguments: V8 keeps its formatter (a new Intl.DateTimeFormat costs ~50 ms).
  const time = match ? timeOf(match[1]!) : "";
  // A reset first: each line is coloured on its own, from what was in force at its start.
  const html = ansi.ansi_to_html(`\u001b[0m${colour}${text}`);
  return { time, stderr: match?.[2] === "err", html };
}

export function LogView(props: { run: string; job?: string | undefined }) {
  const log = useRef(new LogLines(MAX_LINES));
  const drawn = useRef(new Map<number, Drawn>());
  const [, setVersion] = useState(0);
  const [state, setState] = useState<"loading" | "live" | "ended" | "failed">("loading");
  const [error, setError] = useState("");
  const [filter, setFilter] = useState("");
  const box = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  const lastTop = useRef(0);
  /** Asks for a slice of work (indexing, searching) in a task of its own; set by the effect below. */
  const wake = useRef<() => void>(() => {});

  // Reading each file from its start, once asked to.
  const [whole, setWhole] = useState(false);
  const query = new URLSearchParams(props.job ? { job: props.job } : {});
  const raw = `/api/v1${runPath(props.run, "/logs")}?${query}`;
  const source = `${raw}&follow=1${whole ? "" : `&tail=${TAIL_BYTES}`}`;

  useEffect(() => {
    const lines = new LogLines(MAX_LINES);
    lines.search(log.current.needle);
    log.current = lines;
    drawn.current = new Map();
    setState("loading");
    follow.current = true;
    lastTop.current = 0;
    const aborted = new AbortController();
    let frame = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let drawnAt = 0;
    let queued = false;
    const flush = () => {
      frame = 0;
      drawnAt = performance.now();
      setVersion((v) => v + 1);
    };
    // While text pours in (a long tail read at once), the view is drawn every DRAW_MS, not every
    // frame: each draw colours a screenful of new lines and lays them out, and nobody reads them.
    let ended = false;
    /** `now`: all the text is in and indexed, nothing more is coming; the end is drawn at the next frame. */
    const draw = (now: boolean) => {
      if (frame) return;
      const wait = now ? 0 : drawnAt + DRAW_MS - performance.now();
      if (timer && wait > 0) return;
      clearTimeout(timer);
      timer = undefined;
      if (wait <= 0) frame = requestAnimationFrame(flush);
      else
        timer = setTimeout(() => {
          timer = undefined;
          frame = requestAnimationFrame(flush);
        }, wait);
    };
    // A message, not a timer: it runs as soon as the browser has drawn and handled input, unclamped.
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      queued = false;
      if (aborted.signal.aborted) return;
      const done = lines.work(performance.now() + SLICE_MS, () => performance.now());
      draw(done && ended);
      if (!done) wake.current();
    };
    wake.current = () => {
      if (queued) return;
      queued = true;
      channel.port2.postMessage(null);
    };
    readStream(
      source,
      (text) => {
        setState("live");
        lines.push(text);
        wake.current();
      },
      aborted.signal,
    ).then(
      () => {
        ended = true;
        draw(!lines.busy);
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
      clearTimeout(timer);
      channel.port1.close();
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

  // Stay at the bottom while the reader is there, as `tail -f` does (before the browser paints:
  // the new rows are never shown one frame away from the end).
  useLayoutEffect(() => {
    const el = box.current;
    if (follow.current && el && el.scrollTop + el.clientHeight < el.scrollHeight)
      el.scrollTop = el.scrollHeight;
  });

  const lines = log.current;
  const count = lines.count;
  // Following, the rows drawn are the last ones, where the box is about to be scrolled (not those
  // at its scroll position before the new lines: that would draw twice, before and after the scroll).
  const top = follow.current ? Math.max(0, count * ROW - view.height) : view.top;
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(count, Math.ceil((top + view.height) / ROW) + OVERSCAN);
  const rows: { n: number; row: Row; colour: string }[] = [];
  for (let i = first; i < last; i++) {
    const shown = lines.shown(i);
    if (shown) rows.push(shown);
  }
  if (drawn.current.size > DRAWN_KEPT) drawn.current = new Map();
  const drawLine = (n: number, raw: string, colour: string): Drawn => {
    let line = drawn.current.get(n);
    if (!line) {
      line = draw(raw, colour);
      drawn.current.set(n, line);
    }
    return line;
  };
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
          <input
            type="search"
            value={filter}
            onInput={(event) => {
              const value = event.currentTarget.value;
              setFilter(value);
              lines.search(value);
              wake.current();
            }}
          />
        </label>
        <a href={raw} target="_blank" rel="noopener">
          Whole log
        </a>
      </div>
      {lines.tailed && (
        <p class="hint">
          Long sections start near their end.{" "}
          <button type="button" class="link" onClick={() => setWhole(true)}>
            Read them from their start
          </button>
        </p>
      )}
      {lines.dropped > 0 && (
        <p class="hint">{lines.dropped} earlier lines are not shown here: open the whole log.</p>
      )}
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
        {count === 0 && state !== "loading" && !lines.busy && (
          <p class="empty">{lines.needle ? "No line matches." : "No output yet."}</p>
        )}
        <div class="log-rows" style={{ height: `${count * ROW}px` }}>
          <div style={{ transform: `translateY(${first * ROW}px)` }}>
            {rows.map(({ n, row, colour }) => {
              if (typeof row !== "string")
                return (
                  <h3 class="log-row log-head" key={n}>
                    {row.title}
                  </h3>
                );
              const line = drawLine(n, row, colour);
              return (
                <div class={line.stderr ? "log-row line stderr" : "log-row line"} key={n}>
                  <span class="t">{line.time}</span>
                  {/* ansi_up escapes the text: only its own colour spans are markup. */}
                  <span class="x" dangerouslySetInnerHTML={{ __html: line.html }} />
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </section>
  );
}
