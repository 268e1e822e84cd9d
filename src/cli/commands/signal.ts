/** `slipway signal`: deliver a named signal (with an optional JSON payload) to a run, from any process. */
import type { Json } from "../../json.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const signal: Command = {
  name: "signal",
  summary: "Send a signal to a run (kept until the run waits for it)",
  usage:
    "slipway signal RUN NAME [JSON] [--db PATH | --server URL [--token-file F | --token T]]\n\nJSON is the payload, an object by default ({}).",
  async run(args, io) {
    const { values, positionals } = parse(args, connectionOptions, 3);
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
    // Persisted for whoever runs the run: it picks the signal up.
    return withRuns(values, "read", io, async (runs) => {
      const sent = await runs.signal(ref, name, payload);
      io.out(`signal "${name}" sent to ${sent.id} (seq ${sent.seq})\n`);
      return EXIT.ok;
    });
  },
};
