/**
 * Following a run's events: its persisted history after a seq, then live events (progress included)
 * until it ends or stops for someone to act. A run another process runs publishes nothing here, so
 * its history is read again now and then.
 */
import { ENDING_EVENTS, type RunEvent } from "../engine/events.js";
import type { Executor } from "../engine/executor.js";
import type { JobResources } from "../pipeline/resources.js";
import { type RunRecord, STOPPED_STATUSES, type Storage } from "../storage/types.js";

export interface FollowRequest {
  executor: Executor;
  storage: Storage;
  record: RunRecord;
  /** Only events after this seq. */
  after: number;
  signal?: AbortSignal | undefined;
  /** Whether this process runs the run now (its live events are published here). */
  hostedHere: () => boolean;
  /** This process's admission, which knows why its started jobs still wait. */
  admission?: JobResources | undefined;
  /** Live events kept for this follower since the run started (`EarlyEvents.take`). */
  early?: () => RunEvent[];
}

/**
 * Live events of runs about to start, kept for the follower who comes right after (`slipway run`):
 * a quick job's first lines are told only to those listening when it prints them, and following
 * begins only after the run is looked up (a round trip, to PostgreSQL).
 */
export class EarlyEvents {
  readonly #runs = new Map<string, { events: RunEvent[]; stop: () => void }>();

  constructor(private readonly executor: Executor) {}

  /** Starts keeping the events of run `id` (until it ends, or its follower takes them). */
  keep(id: string): void {
    const events: RunEvent[] = [];
    const stop = this.executor.on((event) => {
      events.push(event);
      if (ENDING_EVENTS.has(event.type)) stop();
    }, id);
    this.#runs.set(id, { events, stop });
  }

  /** What was kept for run `id`, once: nothing more is kept. */
  take(id: string): RunEvent[] {
    const kept = this.#runs.get(id);
    this.#runs.delete(id);
    kept?.stop();
    return kept?.events ?? [];
  }
}

/**
 * Live events kept for a follower that does not read them (a stalled client): past this many, its
 * progress lines are dropped, and it is told how many once it reads again. Lifecycle events are kept
 * (they are in the history too, and as many as the run's transitions).
 */
export const MAX_BUFFERED_EVENTS = 10_000;

export async function* followEvents(request: FollowRequest): AsyncGenerator<RunEvent> {
  const { executor, storage, record, signal, hostedHere } = request;
  const id = record.id;
  const buffer: RunEvent[] = [];
  /** Progress dropped for want of room: how many, and the last one (its job, its time). */
  let dropped = 0;
  let lastDropped: RunEvent | undefined;
  let wake: (() => void) | undefined;
  // Listen first, then read the history: nothing falls between the two.
  const stop = executor.on((event) => {
    if (event.seq === undefined && buffer.length >= MAX_BUFFERED_EVENTS) {
      dropped++;
      lastDropped = event;
      return;
    }
    buffer.push(event);
    wake?.();
  }, id);
  // In the same turn: what was kept before, then what this listener hears, nothing twice.
  if (request.early) buffer.push(...request.early());
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  let last = request.after;
  const newer = async () => (await executor.history(id)).filter((e) => e.seq! > last);
  // What each job was last told about its wait: the answer read when the follower came and the live
  // one admission publishes may be the same; a follower hears a reason once, and again on a change.
  const told = new Map<string, string>();
  const fresh = (event: RunEvent): boolean => {
    if (event.type !== "action:progress" || event.action === null || event.data?.queued === undefined)
      return true;
    if (event.data.queued !== true) {
      told.delete(event.action);
      return true;
    }
    const message = String(event.data.message);
    if (told.get(event.action) === message) return false;
    told.set(event.action, message);
    return true;
  };
  try {
    let lastRead: RunEvent | undefined;
    for (const event of await newer()) {
      last = event.seq!;
      lastRead = event;
      yield event;
    }
    // Ended in storage already: a commit is visible before its events are published (the engine
    // publishes once storage answers, after the disk flush), so the end may be read before it is told.
    // What was told live meanwhile (progress) follows, as when the end is read after it was told.
    if (lastRead !== undefined && ENDING_EVENTS.has(lastRead.type)) {
      for (const told of buffer.splice(0)) if (told.seq === undefined && fresh(told)) yield told;
      return;
    }
    const now = await storage.getRun(id);
    if (!now) return;
    // Stopped while the history was read, and not run here: what was published meanwhile (its live
    // progress included) and what the history has beyond it are all that will come.
    const stopped = STOPPED_STATUSES.includes(now.status) && !hostedHere();
    // Why a started job still waits for admission is told live, once and when it changes: a follower
    // who came later hears it now, rather than nothing until the job is admitted.
    if (!stopped) for (const event of await queuedNow(request, now)) if (fresh(event)) yield event;
    while (!signal?.aborted) {
      while (buffer.length > 0) {
        const event = buffer.shift()!;
        if (event.seq !== undefined) {
          if (event.seq <= last) continue;
          // Events published while the history was read, or a batch that was not published here.
          for (const missed of await newer()) if (missed.seq! < event.seq) yield missed;
          last = event.seq;
        }
        if (!fresh(event)) continue;
        // What was dropped came before the end: told first.
        if (dropped > 0 && ENDING_EVENTS.has(event.type)) {
          yield droppedNotice(lastDropped!, dropped);
          dropped = 0;
        }
        yield event;
        if (ENDING_EVENTS.has(event.type)) return;
      }
      if (dropped > 0) {
        yield droppedNotice(lastDropped!, dropped);
        dropped = 0;
      }
      if (stopped) {
        for (const event of await newer()) yield event;
        return;
      }
      // A run another process runs publishes nothing here: read its history now and then.
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, hostedHere() ? 5_000 : 500).unref();
      });
      wake = undefined;
      if (buffer.length === 0)
        for (const event of await newer()) {
          last = event.seq!;
          yield event;
          if (ENDING_EVENTS.has(event.type)) return;
        }
    }
  } finally {
    stop();
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Tells a follower that fell behind how many live lines it missed (the job's log has them all). */
function droppedNotice(last: RunEvent, count: number): RunEvent {
  const message = `${count} live line(s) not shown: this follower fell behind (the log has them all)`;
  return { ...last, data: { message, dropped: count } };
}

/** A progress event for each started job of the run that admission holds back, saying why. */
async function queuedNow(request: FollowRequest, record: RunRecord): Promise<RunEvent[]> {
  const { admission } = request;
  if (!admission) return [];
  const events: RunEvent[] = [];
  for (const step of (await request.storage.load(record.id))?.steps ?? []) {
    if (step.status !== "running") continue;
    const why = admission.explain(record.id, step.action);
    if (why === undefined) continue;
    events.push({
      type: "action:progress",
      runId: record.id,
      saga: record.saga,
      runName: record.runName,
      action: step.action,
      at: Date.now(),
      data: { message: `queued: ${why}`, queued: true },
    });
  }
  return events;
}
