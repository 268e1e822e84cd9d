/** `slipway queue`: every job that is not running, and why: what it waits for, behind whom, until when. */

import { table, time } from "../../format.js";
import type { QueueEntry } from "../../runs/schemas.js";
import { type Command, EXIT, type Io, parse } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const queue: Command = {
  name: "queue",
  summary:
    "List every job that is not running and why: the resource or lock, who holds it, its place in line",
  usage: [
    "slipway queue [--json] [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "Admission (resources, locks, place in line) is known to the process running the job: ask the",
    "server with --server; without it, the waits that storage knows (needs, signals, polls, retries).",
    "On PostgreSQL, any worker of a cluster shows every worker's jobs waiting for a lock, with the",
    "holder's worker.",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(args, { ...connectionOptions, json: { type: "boolean" } }, 0);
    return withRuns(values, "read", io, async (runs) => printQueue(io, await runs.queue(), values.json));
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
