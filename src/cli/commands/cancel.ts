/** `slipway cancel`: request a cancel; the process running the run stops its jobs and runs the undos. */
import type { ActionResponse } from "../../server/schemas.js";
import { remote, runPath, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { dbOption, withRun } from "../state.js";

export const cancel: Command = {
  name: "cancel",
  summary: "Cancel a run: nothing new starts, running jobs stop, completed ones are undone",
  usage: "slipway cancel RUN [--reason TEXT] [--db PATH | --server URL [--token T]]",
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      { ...dbOption, ...serverOptions, reason: { type: "string" } },
      1,
    );
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("cancel needs a run id or name");
    const client = serverClient(values);
    if (client)
      return remote(io, async () => {
        const body = values.reason === undefined ? {} : { reason: values.reason };
        const done = await client.json<ActionResponse>("POST", runPath(ref, "/cancel"), body);
        io.out(`cancel requested for ${done.id}: ${done.message}\n`);
        return EXIT.ok;
      });
    // Persisting the request is enough: the owner acts on it, or the next process that continues the run.
    return withRun(values.db, ref, io, async (executor, run) => {
      const record = await executor.cancel(run.id, values.reason ?? "cancelled from the command line");
      const where =
        record.owner !== null
          ? "the process running it is stopping its jobs and running the undos"
          : "no process runs it now: the undos run when it is continued (slipway resume)";
      io.out(`cancel requested for ${run.id}: ${where}\n`);
      return EXIT.ok;
    });
  },
};
