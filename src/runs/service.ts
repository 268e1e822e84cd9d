/**
 * What a run is to the people and programs that start and watch runs: one interface, implemented once
 * in-process (`LocalRuns`, over storage, the engine and admission) and once over HTTP (`HttpRuns`),
 * so the CLI and the HTTP API never ask which of the two they hold.
 */
import type { RunEvent } from "../engine/events.js";
import type { Json } from "../json.js";
import type { RunRequest } from "../pipeline/plan.js";
import type { AuditQuery, AuditRecord, NewAuditRecord, RunStatus } from "../storage/types.js";
import type { ChangeOptions, RunChange } from "./changes.js";
import type {
  ActionResponse,
  QueueEntry,
  ResourcesResponse,
  RunDetail,
  RunSummary,
  SignalResponse,
  SubmitResponse,
  WorkersResponse,
} from "./schemas.js";

/** A run to submit: a pipeline file's text, or a pipeline registered with the host, by its name. */
export type PipelineSource = { file: string; source: string } | { pipeline: string };

export interface SubmitOptions {
  /** The pipeline's inputs, by name: strings as typed on a command line, or typed values. */
  inputs?: RunRequest["inputs"] | undefined;
  /** Opt-in tiers to include. */
  tiers?: RunRequest["tiers"] | undefined;
  /** The run name, e.g. `{ticket}-{branch}-{attempt}`: in every log line, usable instead of the id. */
  name?: string | undefined;
  /**
   * Makes a submission safe to repeat: the same key returns the run it started the first time; the
   * same key with another pipeline, inputs or tiers is refused (`idempotency_conflict`).
   */
  key?: string | undefined;
  /**
   * What started the run, as the pipeline's `event` reads it (set by triggers, or by a client that
   * triggers runs itself; `kind` names it): a run without one is a manual run, which a pipeline whose
   * `on:` lacks `manual` refuses.
   */
  event?: Record<string, unknown> | undefined;
  /** The run's checkout of the event's commit, where its jobs run (an absolute path on the host). */
  workspace?: string | undefined;
  /**
   * The run's code is untrusted (a fork's pull request): its jobs get no secrets and none of the
   * server's environment beyond the basics.
   */
  untrusted?: boolean | undefined;
  /** Who submitted it: the name of the token a server was sent it with (the server sets it, not its clients). */
  startedBy?: string | undefined;
  /**
   * The caller follows the run next (`events`): its live events from its very start are kept for
   * that follower, a quick job's first lines included (hosted here; a server's runs tell theirs live).
   */
  follow?: boolean | undefined;
}

export interface ListQuery {
  statuses?: readonly RunStatus[] | undefined;
  /** The pipeline's name. */
  pipeline?: string | undefined;
  /** The run name. */
  name?: string | undefined;
  /** The submission's idempotency key. */
  key?: string | undefined;
  /** Text the run's id, name or pipeline contains (any case): what people type in a search box. */
  text?: string | undefined;
  /** The run's concurrency key (`concurrency.key`, else its pipeline's name). */
  concurrency?: string | undefined;
  /** What started the run: an event's kind (`push`, `pull_request`, `comment`, `schedule`...) or `manual`. */
  trigger?: string | undefined;
  /** At most this many runs; the page's `next` cursor continues after the last one. */
  limit?: number | undefined;
  /** From a previous page's `next`. */
  cursor?: string | undefined;
}

/** One page of runs, newest first; `next` is undefined on the last page. */
export interface RunPage {
  runs: RunSummary[];
  next?: string | undefined;
}

export interface LogOptions {
  /** A job name (all its legs) or one step's name; every job when absent. */
  job?: string | undefined;
  /** Read on until the run ends. */
  follow?: boolean | undefined;
  /** Only lines written at or after this time (epoch ms). */
  since?: number | undefined;
  /** Only lines written before this time (epoch ms). */
  until?: number | undefined;
  /** Only the last this many bytes of each log file (from the first whole line in them): a long log's end, at once. */
  tail?: number | undefined;
  /** Stops following (the reader went away). */
  signal?: AbortSignal | undefined;
}

export interface EventOptions {
  /** Resume after this event seq (as `Last-Event-ID`); from the first event when absent. */
  after?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface PruneOptions {
  /** Removes ended runs (completed, compensated, cancelled) that ended before this time (epoch ms). */
  endedBefore: number;
}

export interface PruneResult {
  /** The ids removed, with their logs. */
  removed: string[];
}

/** How a signal is sent. */
export interface SignalOptions {
  /** Makes the signal safe to repeat: a server's `Idempotency-Key` (LocalRuns keeps no keys). */
  key?: string | undefined;
}

export interface RunService {
  /**
   * Whether runs go on after this client goes away: true for a server, false for runs hosted by the
   * calling process itself (a foreground `slipway run`), which must follow them to their end.
   */
  readonly detached: boolean;
  /** Compiles the pipeline and starts a run of it. Problems in the file, inputs or tiers throw. */
  submit(what: PipelineSource, options?: SubmitOptions): Promise<SubmitResponse>;
  /** Runs, newest first: every match, or one page of them with `limit`. */
  list(query?: Omit<ListQuery, "limit" | "cursor">): Promise<RunSummary[]>;
  page(query: ListQuery & { limit: number }): Promise<RunPage>;
  /** One run by id or run name, with its jobs, timings and why each waiting job waits. */
  show(ref: string): Promise<RunDetail>;
  /** The run's job output, chunk by chunk; `follow` reads on until the run ends. */
  logs(ref: string, options?: LogOptions): Promise<AsyncIterable<string>>;
  /** The run's events after `after`, then live ones until it ends or stops for someone to act. */
  events(ref: string, options?: EventOptions): Promise<AsyncIterable<RunEvent>>;
  /**
   * Server-wide notices, small (run id, status, pipeline): runs created or changing status, the queue
   * changing; after `after` (a notice's cursor), then live until `signal` aborts. A `reset` notice says
   * some were missed (too slow a reader, or another process's cursor): re-read what you show.
   */
  changes(options?: ChangeOptions): Promise<AsyncIterable<RunChange>>;
  /** Requests a cancel: running jobs stop, completed ones are undone. */
  cancel(ref: string, reason?: string): Promise<ActionResponse>;
  /**
   * Delivers a named signal (kept until the run waits for it). With `key` (a server's
   * `Idempotency-Key`), a repeat is answered as the first was and the signal is delivered once.
   */
  signal(ref: string, name: string, payload?: Json, options?: SignalOptions): Promise<SignalResponse>;
  /** Continues a held run (failed, `on_failure: hold`) from its failed jobs. */
  retry(ref: string): Promise<ActionResponse>;
  /** Continues a run that needs attention, or an incomplete run no live process runs. */
  resume(ref: string): Promise<ActionResponse>;
  /** Removes ended runs and their logs. */
  prune(options: PruneOptions): Promise<PruneResult>;
  /** Every job of an unfinished run that is not running, and why. */
  queue(): Promise<QueueEntry[]>;
  /**
   * The scheduler's pools and locks with their holders, the jobs running now with what they declared,
   * and per pipeline and job what it declares against its measured peaks.
   */
  resources(): Promise<ResourcesResponse>;
  /** The workers sharing the database: their heartbeats, whether each looks alive, the runs each holds. */
  workers(): Promise<WorkersResponse>;
  close(): Promise<void>;
}

/** A server's record of the mutating requests made to it (who, what, when, the answer). */
export interface AuditLog {
  record(entry: NewAuditRecord): Promise<AuditRecord>;
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditRecord[]>;
}
