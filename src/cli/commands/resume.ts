/**
 * `slipway resume` and `slipway retry`: continue runs and follow them in the foreground. Before a run
 * continues, what its dead process left running (job process groups) is killed, so nothing runs twice.
 */
import { SlipwayError } from "../../errors.js";
import { RemoteError } from "../../http/client.js";
import type { ActionResponse } from "../../runs/schemas.js";
import type { RunService } from "../../runs/service.js";
import { ACTIVE_STATUSES } from "../../storage/types.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";
import { type Followed, follow, viewMode } from "../foreground.js";

const options = { ...connectionOptions, json: { type: "boolean" } } as const;

export const resume: Command = {
  name: "resume",
  summary:
    "Continue every incomplete run (or one) in the foreground, after killing what crashed runs left running",
  usage: [
    "slipway resume [RUN] [--json] [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "Without RUN: every run that is running, waiting or compensating and that no live process runs.",
    "With RUN: that run, also when it needs attention (its failed undos are tried again).",
    "Exits when they have ended, with the worst of their exit codes.",
    "A server continues incomplete runs by itself: there, resume follows them.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(args, options, 1);
    const ref = positionals[0];
    return withRuns(values, "read", io, async (runs) => {
      if (ref !== undefined) return continueRuns(runs, [ref], true, "resume", values.json, io);
      const incomplete = await runs.list({ statuses: ACTIVE_STATUSES });
      // Oldest first, as they were started.
      const refs = incomplete.map((r) => r.id).reverse();
      if (refs.length === 0) {
        io.out("nothing to resume\n");
        return EXIT.ok;
      }
      return continueRuns(runs, refs, false, "resume", values.json, io);
    });
  },
};

export const retry: Command = {
  name: "retry",
  summary: "Continue a held run (on_failure: hold) from its failed jobs, reusing what completed",
  usage: "slipway retry RUN [--json] [--db PATH | --server URL [--token-file F | --token T]]",
  async run(args, io) {
    const { values, positionals } = parse(args, options, 1);
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("retry needs a run id or name");
    return withRuns(values, "read", io, (runs) => continueRuns(runs, [ref], true, "retry", values.json, io));
  },
};

/**
 * Asks the service to continue each run, then follows those it continued to their end. A run named
 * on the command line that it refuses is the answer (exit 1); among every incomplete run, one it
 * refuses is reported and skipped (one a live process runs is left to it, not a failure).
 */
async function continueRuns(
  runs: RunService,
  refs: readonly string[],
  named: boolean,
  action: "resume" | "retry",
  json: boolean | undefined,
  io: Io,
): Promise<number> {
  const mode = viewMode(json);
  const followed: Followed[] = [];
  let worst: number = EXIT.ok;
  for (const ref of refs) {
    let done: ActionResponse;
    try {
      done = action === "retry" ? await runs.retry(ref) : await runs.resume(ref);
    } catch (error) {
      const refused = error instanceof SlipwayError || error instanceof RemoteError;
      if (named || !refused) throw error;
      io.err(`${error.message}\n`);
      // Left to the live process that runs it: not a failure of this command.
      if (error.code !== "conflict") worst = EXIT.failed;
      continue;
    }
    for (const note of done.notes ?? []) io.err(`${note}\n`);
    io.out(
      mode === "json"
        ? `${JSON.stringify({ id: done.id, [action === "retry" ? "retried" : "resumed"]: true })}\n`
        : `${action === "retry" ? "retrying" : "resuming"} run ${done.id}: ${done.message}\n`,
    );
    followed.push({ id: done.id, after: done.seq });
  }
  if (followed.length === 0) return worst;
  return Math.max(worst, await follow(runs, followed, mode, io));
}
