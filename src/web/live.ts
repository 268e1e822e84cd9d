/**
 * Keeping a view current: re-read when the server's change stream (`GET /api/v1/events`) says
 * something changed, coalesced; poll only while that stream is down.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { RunChange } from "../runs/changes.js";

export type { RunChange };

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Loads again now (after an action, or an event that says something changed). */
  reload: () => void;
}

/** Reads started at least this far apart, however many notices arrive (1,000 runs ending at once: a few reads). */
const MIN_GAP_MS = 300;
/** After the server refused or closed the stream for good (not a dropped connection, which EventSource retries). */
const REOPEN_MS = 5000;

interface Watcher {
  change(change: RunChange): void;
  /** The stream opened (true: whatever was missed must be re-read) or dropped (false: poll). */
  state(open: boolean): void;
}

/** One stream per page, open while some view watches it. */
const watchers = new Set<Watcher>();
let source: EventSource | undefined;
let open = false;
let reopen: ReturnType<typeof setTimeout> | undefined;

function connect(): void {
  const es = new EventSource("/api/v1/events");
  source = es;
  es.onopen = () => tell(true);
  es.onerror = () => {
    tell(false);
    // EventSource retries a dropped connection itself; a refusal (401, 5xx) closes it: try later.
    if (es.readyState === EventSource.CLOSED && source === es) {
      source = undefined;
      reopen = setTimeout(() => {
        reopen = undefined;
        if (watchers.size > 0) connect();
      }, REOPEN_MS);
    }
  };
  const onMessage = (message: MessageEvent<string>) => {
    const change = JSON.parse(message.data) as RunChange;
    for (const watcher of watchers) watcher.change(change);
  };
  for (const kind of ["run", "queue", "reset"]) es.addEventListener(kind, onMessage);
}

function tell(now: boolean): void {
  if (open === now) return;
  open = now;
  for (const watcher of watchers) watcher.state(now);
}

function watch(watcher: Watcher): () => void {
  watchers.add(watcher);
  if (!source && !reopen) connect();
  else if (open) watcher.state(true);
  return () => {
    watchers.delete(watcher);
    if (watchers.size > 0) return;
    source?.close();
    source = undefined;
    clearTimeout(reopen);
    reopen = undefined;
    open = false;
  };
}

/**
 * `load()` now, whenever `deps` change, on `reload()`; with `follow`, whenever the change stream tells
 * of a change `follow` cares about (or of missed ones), at most once per MIN_GAP_MS; and every
 * `everyMs` while the page is visible and the stream is not open (never two loads at once: a slow
 * server is not piled on).
 */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: readonly unknown[],
  everyMs?: number,
  follow?: (change: RunChange) => boolean,
): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  const wants = useRef(follow);
  wants.current = follow;
  const following = follow !== undefined;
  useEffect(() => {
    let gone = false;
    let busy = false;
    /** Told of a change while a load was under way: load again after it. */
    let dirty = false;
    let lastStart = 0;
    let later: ReturnType<typeof setTimeout> | undefined;
    let live = false;
    const run = async () => {
      if (busy || gone) return;
      busy = true;
      lastStart = Date.now();
      try {
        const value = await loader.current();
        if (!gone) {
          setData(value);
          setError(undefined);
        }
      } catch (failure) {
        if (!gone) setError(failure as Error);
      } finally {
        busy = false;
        if (dirty) {
          dirty = false;
          soon();
        }
      }
    };
    /** A load as soon as the gap allows; notices meanwhile fold into it. */
    const soon = () => {
      if (gone || later !== undefined) return;
      if (busy) {
        dirty = true;
        return;
      }
      const wait = lastStart + MIN_GAP_MS - Date.now();
      if (wait <= 0) void run();
      else
        later = setTimeout(() => {
          later = undefined;
          void run();
        }, wait);
    };
    void run();
    const stop = following
      ? watch({
          change: (change) => {
            if (change.kind === "reset" || wants.current?.(change)) soon();
          },
          state: (now) => {
            live = now;
            // Opened (or back after a drop): what changed before it opened was not told.
            if (now) soon();
          },
        })
      : undefined;
    const timer =
      everyMs === undefined
        ? undefined
        : setInterval(() => {
            if (!live && document.visibilityState === "visible") void run();
          }, everyMs);
    return () => {
      gone = true;
      stop?.();
      clearInterval(timer);
      clearTimeout(later);
    };
  }, [...deps, tick, following]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}
