/** `slipway logs`: a run's job output, from its per-attempt log files; `-f` follows until the run ends. */
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const logs: Command = {
  name: "logs",
  summary: "Print a run's job output (every attempt, undos included); -f follows it live",
  usage: [
    "slipway logs RUN [JOB] [-f] [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "Each line is `<time> <out|err> <text>`; a header names the job, the attempt and the phase.",
    "JOB is a job name (all legs of a matrix job) or one leg's step name.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      { ...connectionOptions, follow: { type: "boolean", short: "f" } },
      2,
    );
    const [ref, job] = positionals;
    if (ref === undefined) throw new UsageError("logs needs a run id or name");
    return withRuns(values, "read", io, async (runs) => {
      // A job that never started is refused (not found): exit 1.
      for await (const chunk of await runs.logs(ref, { job, follow: values.follow })) io.out(chunk);
      return EXIT.ok;
    });
  },
};
