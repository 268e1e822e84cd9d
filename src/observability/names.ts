/**
 * The words metrics and traces share: a step's job name for labels (bounded: no iteration or leg
 * index), and how a run's or an attempt's end reads as an OpenTelemetry CI/CD result.
 */
import type { RunEventType } from "../engine/events.js";

/**
 * The job a step belongs to, for a label: the text after the last `#n.` of a loop iteration or a
 * run-time fan-out leg (`attempts#2.fix` is `fix`, `build#3.build` is `build`); any other step as
 * it is (`build`, a written-out matrix leg `build.linux`, a probe `deploy.ready`), a pipeline file
 * bounding them.
 */
export function jobOf(action: string): string {
  return action.includes("#") ? action.replace(/^.*#\d+\./, "") : action;
}

/** `cicd.pipeline.result` values (OpenTelemetry CI/CD conventions). */
export type PipelineResult = "success" | "failure" | "error" | "cancellation";

/** A run's result by the event that ended it: held and undone runs failed, one needing attention is in error. */
export function runResult(type: RunEventType): PipelineResult | undefined {
  switch (type) {
    case "run:completed":
      return "success";
    case "run:failed":
    case "run:compensated":
      return "failure";
    case "run:cancelled":
      return "cancellation";
    case "run:needs_attention":
      return "error";
    default:
      return undefined;
  }
}

/** `cicd.pipeline.run.state` of a run not ended, by its status: parked in a durable wait is pending. */
export function runState(status: string): "pending" | "executing" | "finalizing" | undefined {
  if (status === "running") return "executing";
  if (status === "waiting") return "pending";
  if (status === "compensating") return "finalizing";
  return undefined;
}
