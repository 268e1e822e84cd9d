/** A pipeline file's problems, and wrong values given when planning a run, as errors with stable codes. */
import { SlipwayError } from "../errors.js";
import { formatProblem, type Problem } from "../problems.js";

/** A pipeline file has problems; `problems` lists every one, in file order. */
export class PipelineError extends SlipwayError {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    const file = problems[0]?.file ?? "pipeline";
    super("definition", `${file} has ${count}:\n${problems.map(formatProblem).join("\n")}`);
    this.problems = problems;
  }
}

/** Values given when planning a run (inputs, tiers) are wrong; `problems` lists every one. */
export class PipelineInputError extends SlipwayError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super("invalid_input", problems.length === 1 ? problems[0]! : `  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}
