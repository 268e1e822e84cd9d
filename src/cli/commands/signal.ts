/** `slipway signal`: deliver a named signal (with an optional JSON payload) to a run, from any process. */
import type { Json } from "../../json.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { connectionOptions, serverOf, withRuns } from "../connect.js";

export const signal: Command = {
  name: "signal",
  summary: "Send a signal to a run (kept until the run waits for it)",
  usage:
    "slipway signal RUN NAME [JSON] [--key KEY] [--db PATH | --server URL [--token-file F | --token T]]\n\nJSON is the payload, an object by default ({}).\n--key makes the signal safe to repeat (a retry after a timeout): the server answers a repeat of the key\nas it answered the first, and delivers the signal once. Only a server keeps keys: --key needs --server.",
  async run(args, io) {
    const { values, positionals } = parse(args, { ...connectionOptions, key: { type: "string" } }, 3);
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
    const key = values.key;
    if (key !== undefined && serverOf(values) === undefined)
      throw new UsageError("--key needs --server: only a server keeps the keys of the signals it answered");
    // Persisted for whoever runs the run: it picks the signal up.
    return withRuns(values, "read", io, async (runs) => {
      const sent = await runs.signal(ref, name, payload, { key });
      io.out(`signal "${name}" sent to ${sent.id} (seq ${sent.seq})\n`);
      return EXIT.ok;
    });
  },
};
