/** `slipway prune`: remove runs that ended long enough ago, with their logs (retention by hand). */
import { parseDuration, UnitError } from "../../units.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const prune: Command = {
  name: "prune",
  summary: "Remove runs that ended (completed, undone or cancelled) before a time, with their logs",
  usage: [
    "slipway prune --older-than DURATION [--json] [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "DURATION as in pipelines: 30d, 12h, 1h30m. Runs that are unfinished, held or need attention",
    "are kept whatever their age.",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(
      args,
      { ...connectionOptions, "older-than": { type: "string" }, json: { type: "boolean" } },
      0,
    );
    const age = values["older-than"];
    if (age === undefined) throw new UsageError("prune needs --older-than DURATION, e.g. --older-than 30d");
    let ms: number;
    try {
      ms = parseDuration(age);
    } catch (error) {
      if (error instanceof UnitError) throw new UsageError(`--older-than: ${error.message}`);
      throw error;
    }
    return withRuns(values, "read", io, async (runs) => {
      const { removed } = await runs.prune({ endedBefore: Date.now() - ms });
      if (values.json) io.out(`${JSON.stringify({ removed })}\n`);
      else
        io.out(
          removed.length === 0
            ? "nothing to prune\n"
            : `pruned ${removed.length} run(s): ${removed.join(", ")}\n`,
        );
      return EXIT.ok;
    });
  },
};
