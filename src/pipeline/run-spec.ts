/**
 * What a pipeline run keeps in storage: the run's spec (the saga's input, enough to rebuild the run
 * in any process) and each step's result (the action's output), with the schemas that check them.
 */
import { z } from "zod";
import type { JsonObject } from "../json.js";
import type { RunRecord } from "../storage/types.js";

/** What a step's action produces, under its action name. */
export const stepResultSchema = z.object({
  status: z.enum(["success", "skipped"]),
  outputs: z.record(z.string(), z.string()),
  /** Why a step was skipped. */
  reason: z.string().optional(),
  /** Peak resident memory of the job's process tree, sampled while it ran. */
  peakRssBytes: z.number().optional(),
  /** Memory the job was admitted with (what `memory: auto` resolved to). */
  admittedMemoryBytes: z.number().optional(),
  /** How long the job waited for admission before it started. */
  queuedMs: z.number().optional(),
  /** When the job's process was spawned (epoch ms): after admission, unlike the step's start. */
  launchedAt: z.number().optional(),
});
export type StepResult = z.infer<typeof stepResultSchema>;

/** The saga's input: everything needed to rebuild the run's saga in another process. */
export const runSpecSchema = z.object({
  /** Absolute path of the pipeline file; jobs run in its directory. */
  file: z.string(),
  /** The file's text when the run started: later edits don't change a run under way. */
  source: z.string(),
  inputs: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  tiers: z.array(z.string()),
  /** The run's concurrency key, stored so runs can be counted by it without replanning them. */
  key: z.string().optional(),
  /** What started the run (a push, a pull request...), as `event` in expressions; absent: by hand. */
  event: z.record(z.string(), z.unknown()).optional(),
  /** The run's checkout of the event's commit: jobs run there (`SLIPWAY_WORKSPACE`). */
  workspace: z.string().optional(),
  /** Untrusted code (a fork's pull request): no secrets, only the basics of the environment. */
  untrusted: z.boolean().optional(),
  /**
   * The texts of the pipelines its `uses:` jobs reach (and theirs), by absolute path, when the run
   * started: editing them later changes no run under way. Absent: it uses none.
   */
  pipelines: z.record(z.string(), z.string()).optional(),
  /** Who submitted it: the name of the token it was sent to a server with; absent: a trigger or a terminal. */
  startedBy: z.string().optional(),
});
export type RunSpec = z.infer<typeof runSpecSchema>;

/** The spec a pipeline run was started with, or undefined when the run is not a pipeline run. */
export function runSpecOf(run: RunRecord): RunSpec | undefined {
  const parsed = runSpecSchema.safeParse((run.input as JsonObject).run);
  return parsed.success ? parsed.data : undefined;
}
