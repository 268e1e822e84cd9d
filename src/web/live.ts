/** Keeping a view current: polling what has no stream, following what has one. */
import { useEffect, useRef, useState } from "preact/hooks";

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Loads again now (after an action, or an event that says something changed). */
  reload: () => void;
}

/**
 * `load()` now, whenever `deps` change, on `reload()`, and every `everyMs` while the page is visible
 * (never two loads at once: a slow server is not piled on).
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[], everyMs?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    let gone = false;
    let busy = false;
    const run = async () => {
      if (busy || gone) return;
      busy = true;
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
      }
    };
    void run();
    const timer =
      everyMs === undefined
        ? undefined
        : setInterval(() => {
            if (document.visibilityState === "visible") void run();
          }, everyMs);
    return () => {
      gone = true;
      clearInterval(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}
