/**
 * `slipway submit`: queue a run of a pipeline file on a server and print its id; `--follow` shows it
 * as `slipway run` does (live table, plain lines or JSON events, then the summary and exit code).
 */
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { serverOf, withRuns } from "../connect.js";
import { readSource, submitFile, submitOptions } from "./run.js";

export const submit: Command = {
  name: "submit",
  summary: "Queue a run of a pipeline file on a server (--server or SLIPWAY_SERVER) and print its id",
  usage: [
    "slipway submit FILE [--input NAME=VALUE]... [--tier NAME]... [--name RUN_NAME] [--key KEY] [--json]",
    "               [--follow] [--server URL] [--token-file F | --token T]",
    "",
    'Prints the run id (--json: {"id","name","pipeline","jobs"}). --follow shows the run as',
    "slipway run does and exits with its exit code; Ctrl-C cancels the run (twice: stop following).",
    "--key makes the submission safe to repeat: the same key gives the same run.",
    "--name may be a pattern: {ticket}-{branch}-{attempt} fills in inputs (or event fields) and the",
    "next attempt among runs named the same but for it ({{ and }} are literal braces).",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      { ...submitOptions, follow: { type: "boolean", short: "f" } },
      1,
    );
    const file = positionals[0];
    if (file === undefined) throw new UsageError("submit needs a pipeline file");
    // A run queued by this process would stop with it: only a server keeps it going.
    if (serverOf(values) === undefined)
      throw new UsageError("submit needs a server: --server URL or SLIPWAY_SERVER");
    const source = readSource(file, io);
    if (source === undefined) return EXIT.usage;
    return withRuns(values, "write", io, (runs) =>
      submitFile(runs, file, source, values, values.follow === true, io),
    );
  },
};
