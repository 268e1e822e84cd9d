/**
 * Matrices decided at run time: `fromJSON` in expressions, what `validate` checks of such a matrix
 * (at its line), what its JSON means when the job's needs are done, and its limits.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { evaluate, renderTemplate } from "../../../src/pipeline/expression-eval.js";
import { parseExpression, parseTemplate } from "../../../src/pipeline/expressions.js";
import { MAX_EXPRESSION_DEPTH, MAX_MATRIX_LEGS, MAX_STEPS } from "../../../src/pipeline/limits.js";
import type { RunJob } from "../../../src/pipeline/model.js";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { planRun } from "../../../src/pipeline/plan.js";
import { PipelineError } from "../../../src/pipeline/problems.js";
import { MatrixError, runTimeLegs } from "../../../src/pipeline/runtime-matrix.js";
import { formatProblem } from "../../../src/problems.js";

function problems(source: string): string[] {
  try {
    parsePipeline(source, "p.yml");
    return [];
  } catch (error) {
    if (!(error instanceof PipelineError)) throw error;
    return error.problems.map((p) => formatProblem(p).replace(/^p\.yml:/, ""));
  }
}

/** A pipeline whose job `build` needs `plan` and has `matrix` (YAML, indented under the key) and `run`. */
const pipeline = (matrix: string, run = "echo ${{ matrix.value }}", extra = "") =>
  `jobs:\n  plan:\n    run: echo\n  build:\n    needs: [plan]\n    matrix: ${matrix}\n    run: ${run}\n${extra}`;

/** The legs of `build`'s matrix when `plan` output `packages`. */
function legs(matrix: string, packages: string, otherSteps = 2): Record<string, unknown>[] {
  const parsed = parsePipeline(pipeline(matrix, "echo"), "p.yml");
  const job = parsed.jobs.find((j) => j.name === "build") as RunJob;
  return runTimeLegs(
    "build",
    job.runTimeMatrix!,
    { inputs: {}, needs: { plan: { outputs: { packages } } } },
    otherSteps,
  );
}

function legsError(matrix: string, packages: string, otherSteps = 2): string {
  try {
    legs(matrix, packages, otherSteps);
  } catch (error) {
    expect(error).toBeInstanceOf(MatrixError);
    return (error as Error).message;
  }
  throw new Error("expected the matrix to be refused");
}

const WHOLE = "${{ fromJSON(needs.plan.outputs.packages) }}";

describe("fromJSON in expressions", () => {
  it("reads a JSON scalar as a value anywhere, and refuses a list or an object outside `matrix:`", () => {
    const ctx = { inputs: {}, needs: { a: { outputs: { n: "3", ok: "true", list: "[1]", bad: "{oops" } } } };
    expect(evaluate(parseExpression("fromJSON(needs.a.outputs.n) == 3"), ctx)).toBe(true);
    expect(evaluate(parseExpression("fromJson(needs.a.outputs.ok)"), ctx)).toBe(true);
    expect(evaluate(parseExpression("fromJSON('\"x\"')"), ctx)).toBe("x");
    expect(() => renderTemplate(parseTemplate("run ${{ fromJSON(needs.a.outputs.list) }}"), ctx)).toThrow(
      "fromJSON(needs.a.outputs.list) gives a list: only `matrix:` takes one",
    );
    expect(() => evaluate(parseExpression("fromJSON(needs.a.outputs.bad)"), ctx)).toThrow(
      /^fromJSON\(needs\.a\.outputs\.bad\): the text is not JSON \(.*\): "\{oops"$/,
    );
  });

  it("is the one function, with one value, and counts toward the nesting limit", () => {
    expect(() => parseExpression("toJSON(inputs.a)")).toThrow(
      "functions such as `toJSON()` are not supported: expressions support literals, references, ==, !=, &&, ||, !, parentheses and fromJSON(...)",
    );
    expect(() => parseExpression("fromJSON()")).toThrow("`fromJSON()` needs one value to read");
    expect(() => parseExpression("fromJSON(inputs.a inputs.b)")).toThrow(
      "expected `)` to close `fromJSON(`, found `inputs` (it takes one value)",
    );
    const nested = (n: number) => `${"fromJSON(".repeat(n)}'1'${")".repeat(n)}`;
    expect(() => parseExpression(nested(MAX_EXPRESSION_DEPTH.max - 1))).not.toThrow();
    expect(() => parseExpression(nested(MAX_EXPRESSION_DEPTH.max + 1))).toThrow(
      "the expression nests too deep here: over the limit of 64 levels of nesting in an expression (MAX_EXPRESSION_DEPTH",
    );
  });
});

describe("validate: a matrix decided at run time", () => {
  it("accepts the whole matrix from JSON (any `matrix.<axis>` then) and an axis from JSON beside axes written out", () => {
    expect(problems(pipeline(WHOLE, "echo ${{ matrix.value }} ${{ matrix.arch }}"))).toEqual([]);
    const axes = `\n      package: ${WHOLE}\n      arch: [x86_64, aarch64]\n      exclude:\n        - arch: aarch64\n          package: libfoo`;
    expect(problems(pipeline(axes, "echo ${{ matrix.package }} ${{ matrix.arch }}"))).toEqual([]);
    // Planned as one step, named as the job; its legs come when it runs.
    const plan = planRun(parsePipeline(pipeline(WHOLE), "p.yml"), { inputs: {}, tiers: [] });
    expect(plan.steps.map((s) => [s.action, s.needs])).toEqual([
      ["plan", []],
      ["build", ["plan"]],
    ]);
  });

  it("is accepted by the JSON Schema editors use, whole and as an axis", () => {
    const root = join(import.meta.dirname, "..", "..", "..");
    const schema = JSON.parse(readFileSync(join(root, "schema", "pipeline.schema.json"), "utf8"));
    const check = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(schema);
    const axes = `\n      package: ${WHOLE}\n      arch: [x86_64]`;
    for (const matrix of [WHOLE, axes]) {
      check(parseYaml(pipeline(matrix)));
      expect(check.errors ?? []).toEqual([]);
    }
    check(parseYaml(pipeline("libfoo")));
    expect(check.errors?.length).toBeGreaterThan(0);
  });

  it("points at the line of each mistake", () => {
    expect(problems(pipeline("${{ needs.plan.outputs.packages }}"))).toEqual([
      "6:13: `matrix` of job `build` from a value is one `${{ fromJSON(...) }}`, e.g. `${{ fromJSON(needs.plan.outputs.packages) }}`: a JSON list or object, read when the job's needs are done",
    ]);
    expect(problems(pipeline("${{ fromJSON(needs.deploy.outputs.packages) }}"))).toEqual([
      "6:32: `matrix` of job `build`: unknown job `deploy`",
    ]);
    expect(
      problems(
        "jobs:\n  plan:\n    run: echo\n  build:\n    matrix: ${{ fromJSON(needs.plan.outputs.packages) }}\n    run: echo\n",
      ),
    ).toEqual([
      "5:32: `matrix` of job `build`: job `build` can only read outputs of the jobs it needs: add `plan` to its `needs`",
    ]);
    expect(problems(pipeline("${{ fromJSON(env.PACKAGES) }}"))).toEqual([
      "6:26: `matrix` of job `build`: a matrix's expression can read `inputs`, `needs` and `event` only",
    ]);
    expect(problems(pipeline("${{ fromJSON(needs.plan.outputs.packages }}"))).toEqual([
      "6:54: `matrix` of job `build`: expected `)` to close `fromJSON(`, found the end (it takes one value)",
    ]);
    // Axes written out are known: a leg can't read another.
    const axes = `\n      package: ${WHOLE}\n      arch: [x86_64]`;
    expect(problems(pipeline(axes, "echo ${{ matrix.platform }}"))).toEqual([
      "9:26: `run` of job `build`: unknown matrix axis `platform` (axes: `package` and `arch`)",
    ]);
    expect(problems(pipeline(`\n      package: ${WHOLE}\n      exclude: [{ os: linux }]`))[0]).toBe(
      "8:19: `exclude` names `os`, which is not an axis of the matrix (axes: `package`)",
    );
  });

  it("refuses what a leg decided at run time can't be: a wait, a poll, a job with a readiness probe", () => {
    expect(
      problems(
        `jobs:\n  plan:\n    run: echo\n  gate:\n    needs: [plan]\n    matrix: ${WHOLE}\n    wait: { signal: ok }\n`,
      ),
    ).toEqual(["7:5: job `gate` waits for a signal: a matrix decided at run time runs `run` jobs only"]);
    expect(problems(pipeline(WHOLE, "echo", "    ready: { run: 'true' }\n"))).toEqual([
      "8:5: `ready` of job `build`: a matrix decided at run time runs `run` jobs only, without a readiness probe (probe in a job that needs this one)",
    ]);
  });
});

describe("legs of a matrix decided at run time", () => {
  it("a list of plain values: one leg each, read as `matrix.value`", () => {
    expect(legs(WHOLE, '["libfoo", "libbar", 3, true]')).toEqual([
      { value: "libfoo" },
      { value: "libbar" },
      { value: 3 },
      { value: true },
    ]);
    expect(legs(WHOLE, "[]")).toEqual([]);
  });

  it("a list of objects: one leg each, its keys the axes", () => {
    expect(
      legs(WHOLE, '[{"package": "libfoo", "arch": "x86_64"}, {"package": "libbar", "arch": "aarch64"}]'),
    ).toEqual([
      { package: "libfoo", arch: "x86_64" },
      { package: "libbar", arch: "aarch64" },
    ]);
  });

  it("an object of axes: their combinations, less `exclude`, plus `include`, as a matrix written out", () => {
    const json = JSON.stringify({
      package: ["libfoo", "libbar"],
      arch: ["x86_64", "aarch64"],
      exclude: [{ package: "libbar", arch: "aarch64" }],
      include: [
        { package: "libbaz", arch: "s390x" },
        { package: "libfoo", arch: "x86_64" },
      ],
    });
    expect(legs(WHOLE, json)).toEqual([
      { package: "libfoo", arch: "x86_64" },
      { package: "libfoo", arch: "aarch64" },
      { package: "libbar", arch: "x86_64" },
      { package: "libbaz", arch: "s390x" },
    ]);
  });

  it("an axis from JSON beside axes written out: their combinations, less `exclude`", () => {
    const matrix = `\n      package: ${WHOLE}\n      arch: [x86_64, aarch64]\n      exclude: [{ package: libbar, arch: aarch64 }]`;
    expect(legs(matrix, '["libfoo", "libbar"]')).toEqual([
      { package: "libfoo", arch: "x86_64" },
      { package: "libfoo", arch: "aarch64" },
      { package: "libbar", arch: "x86_64" },
    ]);
  });

  it("refuses JSON that is not a matrix, saying what it got and what it takes", () => {
    expect(legsError(WHOLE, "libfoo libbar")).toMatch(
      /^job "build": its matrix fromJSON\(needs\.plan\.outputs\.packages\): fromJSON\(needs\.plan\.outputs\.packages\): the text is not JSON \(.*\): "libfoo libbar"$/,
    );
    expect(legsError(WHOLE, '"libfoo"')).toBe(
      'job "build": its matrix (fromJSON(needs.plan.outputs.packages)) must be a JSON list (one leg per item) or an object of axes, got a string "libfoo"',
    );
    expect(legsError(WHOLE, '["libfoo", ["libbar"]]')).toBe(
      'job "build": its matrix (fromJSON(needs.plan.outputs.packages)) is a list mixing a string "libfoo" (item 1) with other items: list plain values (each leg reads `matrix.value`) or objects (each leg reads their keys as `matrix.<key>`)',
    );
    expect(legsError(WHOLE, '[{"package": {"name": "libfoo"}}]')).toBe(
      'job "build": item 1 of its matrix (fromJSON(needs.plan.outputs.packages)) has `package`: an object; a matrix value is a string, number or boolean',
    );
    expect(legsError(WHOLE, '{"package": "libfoo"}')).toBe(
      'job "build": axis `package` of its matrix (fromJSON(needs.plan.outputs.packages)) must be a JSON list of values, got a string "libfoo"',
    );
    expect(legsError(WHOLE, '[{"pack age": "libfoo"}]')).toContain(
      "names axis `pack age`, which is not a valid name",
    );
    expect(legsError(`\n      package: ${WHOLE}\n      arch: [x86_64]`, '{"a": 1}')).toBe(
      'job "build": matrix axis `package` (fromJSON(needs.plan.outputs.packages)) must be a JSON list of values, got an object',
    );
  });

  it("refuses more legs than MAX_MATRIX_LEGS, or a run past MAX_STEPS, naming the job and the limit", () => {
    const list = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `p${i}`));
    expect(legs(WHOLE, list(MAX_MATRIX_LEGS.max))).toHaveLength(256);
    expect(legsError(WHOLE, list(MAX_MATRIX_LEGS.max + 1))).toBe(
      'job "build": its matrix makes 257 legs, over the limit of 256 legs per job (MAX_MATRIX_LEGS, a fixed limit: see Limits in docs/pipelines.md)',
    );
    const axes = JSON.stringify({
      a: Array.from({ length: 100 }, (_, i) => i),
      b: Array.from({ length: 100 }, (_, i) => i),
    });
    expect(legsError(WHOLE, axes)).toBe(
      'job "build": its matrix makes 10,000 legs (100 × 100), over the limit of 256 legs per job (MAX_MATRIX_LEGS, a fixed limit: see Limits in docs/pipelines.md)',
    );
    // 1,000 other steps and 100 legs: 1,100 steps.
    expect(legsError(WHOLE, list(100), 1_000)).toBe(
      `job "build": its 100 legs make the run 1,100 steps, over the limit of ${MAX_STEPS.max.toLocaleString("en-US")} steps in a run (MAX_STEPS, a fixed limit: see Limits in docs/pipelines.md)`,
    );
  });
});
