/** `slipway workers`: the workers sharing the database (a cluster's servers, foreground runs), alive or not, and what each holds. */

import { duration, table, time } from "../../format.js";
import type { WorkersResponse } from "../../runs/schemas.js";
import { type Command, EXIT, type Io, parse } from "../command.js";
import { connectionOptions, serverOf, withRuns } from "../connect.js";

export const workers: Command = {
  name: "workers",
  summary:
    "List the workers sharing the database: host, pid, started, last heartbeat, the runs each holds, its room for more",
  usage: [
    "slipway workers [--json] [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "A worker silent past its lease is dead: its runs are continued by the others. FREE is the runs it",
    "has room for (its max_runs less the runs it holds); unlimited when nothing limits it.",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(args, { ...connectionOptions, json: { type: "boolean" } }, 0);
    return withRuns(values, "read", io, async (runs) => {
      const found = await runs.workers();
      // On the database directly, this command's own passing executor is no worker: left out.
      const local = serverOf(values) === undefined;
      return printWorkers(
        io,
        local ? { ...found, workers: found.workers.filter((w) => !w.self) } : found,
        values.json,
      );
    });
  },
};

function printWorkers(io: Io, response: WorkersResponse, json: boolean | undefined): number {
  if (json) io.out(`${JSON.stringify(response)}\n`);
  else if (response.workers.length === 0) io.out("no worker is registered\n");
  else
    io.out(
      table([
        ["WORKER", "STATE", "HOST", "PID", "STARTED", "HEARTBEAT", "RUNS", "FREE"],
        ...response.workers.map((w) => [
          w.self ? `${w.id} (this)` : w.id,
          w.alive ? "alive" : "dead",
          w.host,
          String(w.pid),
          time(w.startedAt),
          `${duration(w.heartbeatAgeMs)} ago`,
          String(w.runs.length),
          w.free === null ? "unlimited" : String(w.free),
        ]),
      ]),
    );
  return EXIT.ok;
}
