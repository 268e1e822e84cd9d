/** `slipway logs`: a run's job output, from the per-attempt log files (or a server); `-f` follows until the run ends. */
import { openLogs } from "../../server/logs.js";
import { remote, runPath, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { dataDir, dbOption, dbPath, openStorage } from "../state.js";
import { findRun } from "./runs.js";

export const logs: Command = {
  name: "logs",
  summary: "Print a run's job output (every attempt, undos included); -f follows it live",
  usage: [
    "slipway logs RUN [JOB] [-f] [--db PATH | --server URL [--token T]]",
    "",
    "Each line is `<time> <out|err> <text>`; a header names the job, the attempt and the phase.",
    "JOB is a job name (all legs of a matrix job) or one leg's step name.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      { ...dbOption, ...serverOptions, follow: { type: "boolean", short: "f" } },
      2,
    );
    const [ref, job] = positionals;
    if (ref === undefined) throw new UsageError("logs needs a run id or name");
    const client = serverClient(values);
    if (client)
      return remote(io, async () => {
        const query = new URLSearchParams({
          ...(job !== undefined && { job }),
          ...(values.follow && { follow: "1" }),
        });
        const response = await client.fetch(runPath(ref, `/logs?${query}`));
        const decoder = new TextDecoder();
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
          io.out(decoder.decode(chunk, { stream: true }));
        return EXIT.ok;
      });
    const db = dbPath(values.db);
    const storage = await openStorage(db);
    try {
      const record = await findRun(storage, ref);
      if (!record) {
        io.err(`slipway: no run "${ref}"\n`);
        return EXIT.failed;
      }
      // A job that never started throws: `main` prints it, exit 1.
      const chunks = await openLogs({ storage, dataDir: dataDir(db), record, job, follow: values.follow });
      for await (const chunk of chunks) io.out(chunk);
      return EXIT.ok;
    } finally {
      await storage.close();
    }
  },
};
