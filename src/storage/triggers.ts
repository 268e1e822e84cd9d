/**
 * What triggers remember, durably (so that several servers sharing a database act once): events seen
 * by their key with each pipeline's verdict, webhook deliveries, each source's poll state, schedules
 * fired, reports to forges, leases of the one worker that polls a source. An optional capability of a
 * backend (`Storage.triggers()`); memory, SQLite and PostgreSQL have it.
 */
import type { Json } from "../json.js";

/** What a pipeline did with an event: started a run, ignored it (and why), or waits for approval. */
export type Verdict = "started" | "ignored" | "awaiting_approval";

export interface TriggerEventRecord {
  /** The event's durable identity (triggers/event.ts `eventKey`). */
  key: string;
  source: string;
  kind: string;
  /** The normalized event, as it was first seen. */
  event: Json;
  /** When it was first seen (epoch ms). */
  seenAt: number;
}

export interface VerdictRecord {
  key: string;
  pipeline: string;
  verdict: Verdict;
  /** Why it was ignored or waits; null for a started run. */
  reason: string | null;
  runId: string | null;
  /** The run's checkout, until it is removed. */
  workspace: string | null;
  at: number;
}

/** One source's poll state: the refs it saw last, how the last poll went, when to poll next. */
export interface SourceStateRecord {
  source: string;
  /** Ref name → commit, as of the last successful poll. */
  refs: Record<string, string>;
  lastPollAt: number | null;
  /** `ok`, or what went wrong (the error's message), of the last poll. */
  outcome: string | null;
  /** Polls failed in a row (backoff grows with it); 0 after a success. */
  failures: number;
  nextPollAt: number | null;
  /** What a source kind keeps between polls (ETags of forge requests...). */
  extra: Json;
}

/**
 * What a source with `report:` has told its forge about one pipeline's run of one event (or its
 * refusal of a comment command), and what is left to tell.
 */
export interface ReportRecord {
  key: string;
  pipeline: string;
  source: string;
  /** The run reported on; null for a refused command (a reply only). */
  runId: string | null;
  /** The commit statuses are set on; null when there is none (or statuses are off). */
  sha: string | null;
  /** The pull request a reply goes to. */
  number: number | null;
  /** The comment still to post; null once posted (or when there is none). */
  reply: string | null;
  /** The last status state the forge accepted (`pending`, `success`...); null before the first. */
  state: string | null;
  /** Nothing left to report. */
  done: boolean;
  /** Forge calls failed in a row (retries back off with it); 0 after a success. */
  failures: number;
  /** The last forge call's error, kept (and shown) until a call succeeds. */
  error: string | null;
  /** Not looked at again before this time (epoch ms). */
  nextAt: number;
  /** When it last changed (epoch ms). */
  at: number;
}

/**
 * A lease that makes one worker of several sharing the database do a thing (poll a source, fire its
 * schedules): held by `owner` until `expiresAt` unless renewed.
 */
export interface LeaseRecord {
  name: string;
  /** The holder: a worker's executor id (`host:pid:random`). */
  owner: string;
  /** Epoch ms; at and after it the lease is free to take. */
  expiresAt: number;
}

export interface TriggerStore {
  /** Records an event by its key; false (nothing written) when the key was seen before. */
  recordEvent(event: TriggerEventRecord): Promise<boolean>;
  getEvent(key: string): Promise<TriggerEventRecord | undefined>;
  /** Sets the verdict of one pipeline on one event (replacing an earlier one). */
  putVerdict(verdict: VerdictRecord): Promise<void>;
  verdicts(key: string): Promise<VerdictRecord[]>;
  /** The newest events first (of one source, when given), each with its verdicts. */
  recentEvents(
    limit: number,
    source?: string,
  ): Promise<(TriggerEventRecord & { verdicts: VerdictRecord[] })[]>;
  /** Verdicts whose workspace has not been removed yet. */
  workspaces(): Promise<VerdictRecord[]>;
  /** Records that a verdict's workspace is gone. */
  clearWorkspace(key: string, pipeline: string): Promise<void>;
  /** Records a webhook delivery id; false when it was recorded before (a replay). */
  recordDelivery(source: string, delivery: string, at: number): Promise<boolean>;
  getSourceState(source: string): Promise<SourceStateRecord | undefined>;
  putSourceState(state: SourceStateRecord): Promise<void>;
  listSourceStates(): Promise<SourceStateRecord[]>;
  /** Records that `by` approved head commit `sha` of a fork's pull request `number` of `source`. */
  approve(source: string, number: number, sha: string, by: string, at: number): Promise<void>;
  /** The approved head commits of a pull request. */
  approvals(source: string, number: number): Promise<string[]>;
  /** The last minute a schedule fired for, if it ever fired. */
  lastFiring(schedule: string): Promise<number | undefined>;
  /**
   * Records that a schedule fires for `minute`; false (nothing written) when it already fired for
   * that minute or a later one, so two servers, or a restart, fire it once.
   */
  claimFiring(schedule: string, minute: number): Promise<boolean>;
  /** Records a report to make; false (nothing written) when one was recorded for the key and pipeline. */
  recordReport(report: ReportRecord): Promise<boolean>;
  /** Replaces a report's record. */
  putReport(report: ReportRecord): Promise<void>;
  /** Reports not done whose `nextAt` has come, soonest first. */
  dueReports(now: number, limit: number): Promise<ReportRecord[]>;
  /** The most recently changed reports first. */
  recentReports(limit: number): Promise<ReportRecord[]>;
  /**
   * Takes lease `name` for `owner` until `now + leaseMs` when it is free, expired at `now`, or already
   * `owner`'s (renewing it); false (nothing written) while another owner holds it. One statement, so
   * two workers taking it at once never both get it.
   */
  takeLease(name: string, owner: string, now: number, leaseMs: number): Promise<boolean>;
  /** Gives lease `name` up if `owner` holds it (nothing happens otherwise). */
  releaseLease(name: string, owner: string): Promise<void>;
  /** Every lease, expired ones included, by name. */
  listLeases(): Promise<LeaseRecord[]>;
}
