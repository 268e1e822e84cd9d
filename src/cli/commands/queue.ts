/** `slipway queue`: every job that is not running, and why: what it waits for, behind whom, until when. */

import { table, time } from "../../format.js";
import { queueFromStorage } from "../../server/explain.js";
import type { QueueEntry, QueueResponse } from "../../server/schemas.js";
import { remote, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, type Io, parse } from "../command.js";
import { dbOption, dbPath, openStorage } from "../state.js";

export const queue: Command = {
  name: "queue",
  summary:
    "List every job that is not running and why: the resource or lock, who holds it, its place in line",
  usage: [
    "slipway queue [--json] [--db PATH | --server URL [--token T]]",
    "",
    "Admission (resources, locks, place in line) is known to the process running the job: ask the",
    "server with --server; without it, the waits that storage knows (needs, signals, polls, retries).",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(args, { ...dbOption, ...serverOptions, json: { type: "boolean" } }, 0);
    const client = serverClient(values);
    if (client)
      return remote(io, async () =>
        printQueue(io, (await client.json<QueueResponse>("GET", "/queue")).jobs, values.json),
      );
    const storage = await openStorage(dbPath(values.db));
    try {
      return printQueue(io, await queueFromStorage(storage), values.json);
    } finally {
      await storage.close();
    }
  },
};

function printQueue(io: Io, jobs: readonly QueueEntry[], json: boolean | undefined): number {
  if (json) io.out(`${JSON.stringify({ jobs })}\n`);
  else if (jobs.length === 0) io.out("nothing waits\n");
  else
    io.out(
      table([
        ["RUN", "JOB", "STATE", "WAITS FOR", "UNTIL", "WHY"],
        ...jobs.map((j) => [
          j.runName ?? j.run,
          j.label,
          j.state,
          j.reason,
          j.until === null ? "-" : time(j.until),
          j.message,
        ]),
      ]),
    );
  return EXIT.ok;
}
