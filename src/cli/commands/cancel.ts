/** `slipway cancel`: request a cancel; the process running the run stops its jobs and runs the undos. */
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const cancel: Command = {
  name: "cancel",
  summary: "Cancel a run: nothing new starts, running jobs stop, completed ones are undone",
  usage: "slipway cancel RUN [--reason TEXT] [--db PATH | --server URL [--token-file F | --token T]]",
  async run(args, io) {
    const { values, positionals } = parse(args, { ...connectionOptions, reason: { type: "string" } }, 1);
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("cancel needs a run id or name");
    // Persisting the request is enough: the owner acts on it, or the next process that continues the run.
    return withRuns(values, "read", io, async (runs) => {
      const done = await runs.cancel(ref, values.reason ?? "cancelled from the command line");
      io.out(`cancel requested for ${done.id}: ${done.message}\n`);
      return EXIT.ok;
    });
  },
};
