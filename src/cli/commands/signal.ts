/** `slipway signal`: deliver a named signal (with an optional JSON payload) to a run, from any process. */
import type { Json } from "../../json.js";
import { remote, runPath, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { dbOption, withRun } from "../state.js";

export const signal: Command = {
  name: "signal",
  summary: "Send a signal to a run (kept until the run waits for it)",
  usage:
    "slipway signal RUN NAME [JSON] [--db PATH | --server URL [--token T]]\n\nJSON is the payload, an object by default ({}).",
  async run(args, io) {
    const { values, positionals } = parse(args, { ...dbOption, ...serverOptions }, 3);
    const [ref, name, text] = positionals;
    if (ref === undefined || name === undefined) throw new UsageError("signal needs a run and a signal name");
    let payload: Json = {};
    if (text !== undefined) {
      try {
        payload = JSON.parse(text) as Json;
      } catch (error) {
        throw new UsageError(`the payload is not valid JSON: ${(error as Error).message}`);
      }
    }
    const client = serverClient(values);
    if (client)
      return remote(io, async () => {
        const path = runPath(ref, `/signals/${encodeURIComponent(name)}`);
        const sent = await client.json<{ id: string; seq: number }>("POST", path, payload);
        io.out(`signal "${name}" sent to ${sent.id} (seq ${sent.seq})\n`);
        return EXIT.ok;
      });
    // Persisted for whoever runs the execution: it picks the signal up.
    return withRun(values.db, ref, io, async (executor, run) => {
      const sent = await executor.signal(run.id, name, payload);
      io.out(`signal "${name}" sent to ${run.id} (seq ${sent.seq})\n`);
      return EXIT.ok;
    });
  },
};
