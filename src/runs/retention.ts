/**
 * A server's `retention:`: now and then, the ended runs older than the configured age are pruned with
 * their logs, through the same prune as `slipway prune --older-than`.
 */
import type { Logger } from "pino";
import type { Clock, ClockTimer } from "../clock.js";
import type { Retention } from "./config.js";
import type { PruneResult, RunService } from "./service.js";

export interface RetentionOptions extends Retention {
  runs: Pick<RunService, "prune">;
  clock: Clock;
  logger: Logger;
}

export interface RetentionHandle {
  /** Prunes once now (also what each period does); resolves with what was removed. */
  sweep(): Promise<PruneResult>;
  /** Stops the periods; a sweep under way finishes first. */
  stop(): Promise<void>;
}

/** Starts pruning: a first sweep at once, then one every `everyMs` after the last ended. */
export function startRetention(options: RetentionOptions): RetentionHandle {
  const { runs, clock, logger, olderThanMs, everyMs } = options;
  let timer: ClockTimer | undefined;
  let stopped = false;
  let running: Promise<PruneResult> | undefined;

  const sweep = (): Promise<PruneResult> => {
    running ??= runs
      .prune({ endedBefore: clock.now() - olderThanMs })
      .then((result) => {
        if (result.removed.length > 0)
          logger.info({ removed: result.removed.length, olderThanMs }, "retention pruned ended runs");
        return result;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const period = () => {
    timer = undefined;
    sweep()
      // A failed sweep (a full disk, a busy database) is tried again next period.
      .catch((error: unknown) => logger.error({ err: error }, "retention could not prune"))
      .finally(() => {
        if (!stopped) timer = clock.setTimeout(period, everyMs);
      });
  };
  period();
  return {
    sweep,
    async stop() {
      stopped = true;
      clock.clearTimeout(timer);
      timer = undefined;
      await running?.catch(() => {});
    },
  };
}
