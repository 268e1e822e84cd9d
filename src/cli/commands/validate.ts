/** `slipway validate`: check a pipeline file and list every problem in it, without running anything. */
import { NotFoundError } from "../../errors.js";
import { loadPipeline, parsePipeline } from "../../pipeline/parse.js";
import { PipelineError } from "../../pipeline/problems.js";
import { usedPipelines } from "../../pipeline/uses-tree.js";
import { formatProblem } from "../../problems.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";

export const validate: Command = {
  name: "validate",
  summary: "Check a pipeline file and list every problem in it",
  usage:
    "slipway validate FILE\n\nPrints `FILE: ok (N jobs)`, or each problem as FILE:LINE:COL: message (exit code 2).",
  run(args, io) {
    const { positionals } = parse(args, {}, 1);
    const file = positionals[0];
    if (file === undefined) throw new UsageError("validate needs a pipeline file");
    try {
      const pipeline = loadPipeline(file);
      // The pipelines its `uses:` jobs reach, checked as a run would when it starts.
      usedPipelines(pipeline, parsePipeline);
      const count = pipeline.jobs.length;
      io.out(`${file}: ok (${count} ${count === 1 ? "job" : "jobs"})\n`);
      return EXIT.ok;
    } catch (error) {
      if (error instanceof PipelineError) {
        for (const problem of error.problems) io.err(`${formatProblem(problem)}\n`);
        return EXIT.usage;
      }
      if (error instanceof NotFoundError) {
        io.err(`slipway: ${error.message}\n`);
        return EXIT.usage;
      }
      throw error;
    }
  },
};
