/**
 * Polling a plain git source: `git ls-remote` at the source's interval (plus a jitter of at most a
 * tenth of it), each moved branch or new tag becoming a push event; on an error the source backs off
 * (doubling, up to 16 intervals or an hour, whichever is less) and its state says why. The first
 * poll of a source only notes where its refs are: runs start for pushes after it.
 */
import type { Json } from "../json.js";
import type { SourceStateRecord, TriggerStore } from "../storage/triggers.js";
import type { SourceConfig } from "./config.js";
import type { Dispatcher } from "./dispatcher.js";
import type { PushEvent, TriggerEvent } from "./event.js";
import type { Forge } from "./forges/forge.js";
import { ForgeError } from "./forges/http.js";
import { type ForgePollState, pollForge } from "./forges/poll.js";
import { lsRemote, newCommits } from "./git.js";
import type { Workspaces } from "./workspaces.js";

const MAX_BACKOFF_MS = 3_600_000;

export interface PollerOptions {
  source: SourceConfig;
  store: TriggerStore;
  dispatcher: Dispatcher;
  workspaces: Workspaces;
  /** The source's forge client (its REST API: pull requests, comments); absent for a plain git source. */
  forge?: Forge | undefined;
  now: () => number;
  /** In [0, 1); injectable so tests know the jitter. */
  random?: () => number;
}

/** The state of a source that was never polled. */
export function initialState(source: string): SourceStateRecord {
  return { source, refs: {}, lastPollAt: null, outcome: null, failures: 0, nextPollAt: null, extra: {} };
}

/** The delay before the next poll: the interval after a success, a growing backoff after failures, plus jitter. */
export function nextDelay(intervalMs: number, failures: number, random: () => number): number {
  const base =
    failures === 0 ? intervalMs : Math.min(intervalMs * 2 ** failures, intervalMs * 16, MAX_BACKOFF_MS);
  return Math.max(base, intervalMs) + Math.floor(random() * (intervalMs / 10));
}

/** One poll of the source: reads its refs, delivers what moved, records the outcome. Never throws. */
export async function pollSource(options: PollerOptions): Promise<SourceStateRecord> {
  const { source, store, dispatcher, workspaces, now } = options;
  const random = options.random ?? Math.random;
  const state = (await store.getSourceState(source.name)) ?? initialState(source.name);
  const started = now();
  try {
    const refs = await lsRemote(workspaces.access(source));
    const extra = state.extra as { seeded?: boolean; forge?: ForgePollState };
    if (extra.seeded === true) {
      const events = await pushesBetween(options, state.refs, refs, started);
      if (events.length > 0) await dispatcher.deliver(events);
    }
    // Pull requests and comments come from the forge's API (its first poll is a baseline too).
    let forgeState = extra.forge;
    if (options.forge) {
      const polled = await pollForge(options.forge, source.name, forgeState, started);
      if (polled.events.length > 0) await dispatcher.deliver(polled.events);
      forgeState = polled.state;
    }
    const next: SourceStateRecord = {
      ...state,
      refs,
      lastPollAt: started,
      outcome: "ok",
      failures: 0,
      nextPollAt: started + nextDelay(source.pollMs, 0, random),
      extra: {
        ...(state.extra as Record<string, Json>),
        seeded: true,
        ...(forgeState && { forge: forgeState as unknown as Json }),
      },
    };
    await store.putSourceState(next);
    return next;
  } catch (error) {
    const failures = state.failures + 1;
    // A forge that says when to come back (a rate limit) is believed.
    const asked = error instanceof ForgeError ? (error.retryAfterMs ?? 0) : 0;
    const delay = Math.max(nextDelay(source.pollMs, failures, random), asked);
    const next: SourceStateRecord = {
      ...state,
      lastPollAt: started,
      outcome: `${(error as Error).message}; backing off ${Math.round(delay / 1000)}s (failure ${failures} in a row)`,
      failures,
      nextPollAt: started + delay,
    };
    await store.putSourceState(next).catch(() => {});
    return next;
  }
}

/** Push events for every branch that moved and every new tag, with the commits each push added. */
async function pushesBetween(
  options: PollerOptions,
  before: Record<string, string>,
  after: Record<string, string>,
  at: number,
): Promise<TriggerEvent[]> {
  const { source, workspaces } = options;
  const moved = Object.entries(after).filter(([ref, sha]) => before[ref] !== sha);
  if (moved.length === 0) return [];
  await workspaces.fetch(source);
  const mirror = workspaces.mirrorOf(source);
  const events: TriggerEvent[] = [];
  for (const [ref, sha] of moved) {
    const push: PushEvent = { kind: "push", ref, sha };
    if (ref.startsWith("refs/heads/")) push.branch = ref.slice("refs/heads/".length);
    else if (ref.startsWith("refs/tags/")) {
      // A tag that moved is rewritten history, not a release: only new tags start runs.
      if (before[ref] !== undefined) continue;
      push.tag = ref.slice("refs/tags/".length);
    } else continue;
    const old = before[ref];
    if (old !== undefined) push.before = old;
    if (push.branch !== undefined) push.commits = await newCommits(mirror, old, sha);
    events.push({ ...push, source: source.name, at, arrival: { via: "poll" } });
  }
  return events;
}
