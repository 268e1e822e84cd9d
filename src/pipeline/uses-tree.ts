/**
 * The pipelines a pipeline's `uses:` jobs reach, read and checked as one tree: each file is found
 * and valid, `with:` matches the inputs it declares, no pipeline uses itself (directly or not), and
 * they nest at most MAX_USES_DEPTH deep. A run captures their texts when it starts (RunSpec.pipelines).
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { closest, listOr, type Problem } from "../problems.js";
import type { Position } from "../yaml-reader.js";
import { MAX_USES_DEPTH, overLimit } from "./limits.js";
import type { Pipeline, UsesJob } from "./model.js";
import { coerce } from "./plan.js";
import { PipelineError } from "./problems.js";

/** The parse the tree uses (compile.ts passes its memoized one). */
export type ParsePipeline = (source: string, file: string) => Pipeline;

/** Pipeline texts by absolute path: how a run keeps the pipelines its jobs use. */
export type PipelineTexts = Record<string, string>;

/** The absolute path of the pipeline a `uses:` job of `file` names. */
export function usedFile(file: string, job: UsesJob): string {
  return resolve(dirname(resolve(file)), job.uses);
}

/**
 * Reads (from disk, or from `captured` when given) every pipeline `pipeline`'s `uses:` jobs reach,
 * and checks the tree; throws a PipelineError listing every problem. Returns their texts by absolute
 * path, or undefined when the pipeline uses none.
 */
export function usedPipelines(
  pipeline: Pipeline,
  parse: ParsePipeline,
  captured?: PipelineTexts,
): PipelineTexts | undefined {
  if (!pipeline.jobs.some((job) => job.kind === "uses")) return undefined;
  const texts: PipelineTexts = {};
  const problems: Problem[] = [];
  const read = (path: string, shown: string, job: UsesJob, from: string): string | undefined => {
    if (Object.hasOwn(texts, path)) return texts[path];
    let text: string | undefined;
    if (captured) text = captured[path];
    else {
      try {
        text = readFileSync(path, "utf8");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const why = code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? String(error)})`;
        problems.push(at(from, job.usesPos, `job \`${job.name}\` uses ${shown}, which ${why}`));
        return undefined;
      }
    }
    if (text === undefined) {
      problems.push(at(from, job.usesPos, `job \`${job.name}\` uses ${shown}, which the run did not keep`));
      return undefined;
    }
    texts[path] = text;
    return text;
  };
  const visit = (current: Pipeline, file: string, chain: string[]): void => {
    for (const job of current.jobs) {
      if (job.kind !== "uses" || job.uses === "") continue;
      const path = usedFile(file, job);
      const shown = join(dirname(file), job.uses);
      if (chain.includes(path)) {
        const names = [...chain.slice(chain.indexOf(path)), path].map((p) => displayed(p));
        problems.push(at(file, job.usesPos, `pipelines use each other in a cycle: ${names.join(" -> ")}`));
        continue;
      }
      // `chain` holds this file and those above it: the first pipeline using another is 1 deep.
      if (chain.length > MAX_USES_DEPTH.max) {
        problems.push(
          at(
            file,
            job.usesPos,
            `job \`${job.name}\` uses ${shown} ${chain.length} deep, ${overLimit(MAX_USES_DEPTH)}`,
          ),
        );
        continue;
      }
      const text = read(path, shown, job, file);
      if (text === undefined) continue;
      let child: Pipeline;
      try {
        child = parse(text, shown);
      } catch (error) {
        if (!(error instanceof PipelineError)) throw error;
        problems.push(at(file, job.usesPos, `job \`${job.name}\` uses ${shown}, which has problems:`));
        problems.push(...error.problems);
        continue;
      }
      checkWith(job, child, shown, file, problems);
      visit(child, shown, [...chain, path]);
    }
  };
  visit(pipeline, pipeline.file, [resolve(pipeline.file)]);
  if (problems.length > 0) throw new PipelineError(problems);
  return texts;
}

/** `with:` against the inputs the used pipeline declares: none unknown, every required one given, literals of the right type. */
function checkWith(job: UsesJob, child: Pipeline, shown: string, file: string, problems: Problem[]): void {
  const declared = Object.keys(child.inputs);
  for (const [name, given] of Object.entries(job.with)) {
    const input = child.inputs[name];
    if (!input) {
      const hint = closest(name, declared);
      problems.push({
        ...at(
          file,
          given.keyPos,
          `\`with.${name}\` of job \`${job.name}\`: ${shown} has no input \`${name}\`${declared.length ? ` (inputs: ${listOr(declared, "and")})` : " (it declares no inputs)"}`,
        ),
        ...(hint !== undefined && { suggestion: hint }),
      });
      continue;
    }
    // A string with expressions is known when the job runs: the child run's inputs are checked then.
    const literal =
      typeof given.value === "object"
        ? given.value.parts.every((part) => part.kind === "text")
          ? given.value.source
          : undefined
        : given.value;
    if (literal === undefined) continue;
    const typed = coerce(input, literal);
    if ("problem" in typed)
      problems.push(at(file, given.pos, `\`with.${name}\` of job \`${job.name}\`: ${typed.problem}`));
  }
  for (const input of Object.values(child.inputs)) {
    if (input.required && !Object.hasOwn(job.with, input.name))
      problems.push(
        at(
          file,
          job.usesPos,
          `job \`${job.name}\` uses ${shown}, whose input \`${input.name}\` is required: give it in \`with:\``,
        ),
      );
  }
}

function at(file: string, pos: Position, message: string): Problem {
  return { file, line: pos.line, col: pos.col, message };
}

/** A path as messages show it: relative to the working directory when under it. */
function displayed(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}
