/** What a pipeline step's body is given when it runs: its plan, its directory and the process's runtime. */
import type { ActionContext } from "../definition/types.js";
import type { Launcher } from "../shell/launcher.js";
import type { LogPhase } from "../shell/run-directory.js";
import type { RunRecord } from "../storage/types.js";
import type { Plan } from "./plan.js";
import type { JobResources } from "./resources.js";

/** What job bodies need from the process that runs them. */
export interface JobRuntime {
  /** Where run directories are (shell/run-directory.ts): job logs, pid files, follower marks. */
  dataDir: string;
  /** The environment jobs inherit from (and `secrets:` from `env` are read in). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /**
   * Which of its variables a job inherits (job-env.ts). Default: all but Slipway's credentials; a
   * server passes an allow-list.
   */
  inherit?: (name: string) => boolean;
  /** After SIGTERM, how long a job's processes get before SIGKILL. Default 5 s. */
  killGraceMs?: number;
  /** Admits jobs by what they declare in `resources:` before they start; absent: they start at once. */
  resources?: JobResources;
  /** Starts job processes off this process's main thread (a server's); absent: spawned directly. */
  launcher?: Launcher;
  /** The runs in storage, for `concurrency:`; set once the process has an executor. */
  runs?: RunRoster;
  /**
   * With tracing on: the W3C `traceparent` of the span of this attempt or undo, handed to the job's
   * processes as `TRACEPARENT`; absent: no such variable.
   */
  traceparent?: (ctx: ActionContext, phase: LogPhase) => string | undefined;
}

export interface StepContext {
  plan: Plan;
  /** The pipeline file's directory: where jobs run unless `working_directory` or a workspace says otherwise. */
  dir: string;
  /** The run's checkout of its event's commit: jobs run there (`working_directory` is relative to it). */
  workspace?: string;
  /** Untrusted code (a fork's pull request): no secrets, only the basics of the environment. */
  untrusted?: boolean;
  runtime: JobRuntime;
}

/** What a run's concurrency gate needs to see and do: the other unfinished runs of its pipeline. */
export interface RunRoster {
  /** Runs of this saga that have not ended: active, held after a failure, or needing attention. */
  unfinished(saga: string): Promise<RunRecord[]>;
  cancel(runId: string, reason: string): Promise<void>;
  /**
   * Takes one of `limit` slots of `slotKey` for the run, held until it ends (`LockStore.takeRunSlot`):
   * true when it holds one. Storage without a lock store answers true (the count alone decides).
   */
  takeSlot(slotKey: string, runId: string, limit: number): Promise<boolean>;
  /** The unfinished runs holding slots of `slotKey`. */
  slotHolders(slotKey: string): Promise<string[]>;
}
