/**
 * Every limit of src/pipeline/limits.ts (and MAX_JSON_DEPTH): refused with the file's line and column
 * and a message naming the limit, just past it; accepted at it; and no file up to the size limit,
 * however it is shaped, takes long to refuse.
 */
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../../src/errors.js";
import { assertJson, jsonTooDeep, MAX_JSON_DEPTH } from "../../../src/json.js";
import {
  MAX_DURATION,
  MAX_EXPRESSION_DEPTH,
  MAX_EXPRESSION_LENGTH,
  MAX_FILE_BYTES,
  MAX_INPUT_BYTES,
  MAX_ITEMS,
  MAX_JOBS,
  MAX_MATRIX_LEGS,
  MAX_STEPS,
  MAX_YAML_DEPTH,
} from "../../../src/pipeline/limits.js";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { planRun } from "../../../src/pipeline/plan.js";
import { PipelineError, PipelineInputError } from "../../../src/pipeline/problems.js";
import { formatProblem } from "../../../src/problems.js";

/** The problems of `source`, formatted; [] when it parses. */
function problems(source: string): string[] {
  try {
    parsePipeline(source, "p.yml");
    return [];
  } catch (error) {
    if (!(error instanceof PipelineError)) throw error;
    return error.problems.map(formatProblem);
  }
}

const values = (n: number) => `[${Array.from({ length: n }, (_, i) => i).join(", ")}]`;
const jobs = (n: number, body = "{ run: echo }") =>
  `jobs:\n${Array.from({ length: n }, (_, i) => `  j${i}: ${body}`).join("\n")}\n`;
const condition = (expression: string) => `jobs:\n  a:\n    if: \${{ ${expression} }}\n    run: echo\n`;

describe("pipeline limits", () => {
  it("matrix legs per job: counted at validate time, with and without `exclude` and `include`", () => {
    const axes = Array.from({ length: 8 }, (_, i) => `      a${i}: ${values(8)}`).join("\n");
    expect(problems(`jobs:\n  build:\n    matrix:\n${axes}\n    run: echo\n`)).toEqual([
      "p.yml:4:7: `matrix` of job `build` makes 16,777,216 combinations of its axes (8 × 8 × 8 × 8 × 8 × 8 × 8 × 8), over the limit of 256 legs per job (MAX_MATRIX_LEGS, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
    const matrix = (body: string) => `jobs:\n  build:\n    matrix:\n${body}\n    run: echo\n`;
    expect(MAX_MATRIX_LEGS.max).toBe(256);
    expect(problems(matrix(`      x: ${values(16)}\n      y: ${values(16)}`))).toEqual([]);
    expect(problems(matrix(`      x: ${values(16)}\n      y: ${values(17)}`))[0]).toContain(
      "makes 272 legs, over the limit of 256 legs per job",
    );
    // 17 × 16 = 272, less the 16 legs with x: 0.
    expect(
      problems(matrix(`      x: ${values(17)}\n      y: ${values(16)}\n      exclude: [{ x: 0 }]`)),
    ).toEqual([]);
    expect(
      problems(
        matrix(`      x: ${values(16)}\n      y: ${values(16)}\n      include: [{ x: 99, y: 0, if: true }]`),
      )[0],
    ).toContain("makes 257 legs");
  });

  it("steps in a run and jobs in a pipeline", () => {
    expect(problems(jobs(MAX_JOBS.max))).toEqual([]);
    expect(problems(jobs(MAX_JOBS.max + 1))).toEqual([
      "p.yml:1:1: the pipeline has 257 jobs, over the limit of 256 jobs in a pipeline (MAX_JOBS, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
    const legs = `{ run: echo, matrix: { x: ${values(205)} } }`;
    expect(MAX_STEPS.max).toBeLessThan(5 * 205);
    expect(problems(jobs(5, legs))).toEqual([
      "p.yml:1:1: the pipeline's jobs make 1,025 steps, over the limit of 1,024 steps in a run (MAX_STEPS, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
  });

  it("expression length and depth: `!`, parentheses and chains of operators", () => {
    const at = (text: string) => problems(condition(text));
    expect(at(`${"!".repeat(20_000)}true`)).toEqual([
      "p.yml:3:12: `if` of job `a`: the expression is 20,006 characters long, over the limit of 4,096 characters in an expression (MAX_EXPRESSION_LENGTH, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
    expect(at(`${"(".repeat(50_000)}true${")".repeat(50_000)}`)[0]).toContain("MAX_EXPRESSION_LENGTH");
    expect(at(`'${"x".repeat(MAX_EXPRESSION_LENGTH.max - 4)}'`)).toEqual([]);

    const depth = MAX_EXPRESSION_DEPTH.max;
    expect(at(`${"!".repeat(depth - 1)}true`)).toEqual([]);
    expect(at(`${"!".repeat(depth + 1)}true`)[0]).toMatch(
      /^p\.yml:3:\d+: `if` of job `a`: the expression nests too deep here: over the limit of 64 levels of nesting in an expression \(MAX_EXPRESSION_DEPTH/,
    );
    expect(at(`${"(".repeat(depth + 1)}true${")".repeat(depth + 1)}`)[0]).toContain("MAX_EXPRESSION_DEPTH");
    expect(
      at(
        Array(depth + 2)
          .fill("true")
          .join(" || "),
      )[0],
    ).toContain("MAX_EXPRESSION_DEPTH");
    expect(at(Array(depth).fill("true").join(" || "))).toEqual([]);
  });

  it("file size, YAML nesting and entries in one map or list", () => {
    const big = `jobs:\n  a:\n    run: echo ${"x".repeat(MAX_FILE_BYTES.max)}\n`;
    expect(problems(big)).toEqual([
      `p.yml:1:1: the file is ${(MAX_FILE_BYTES.max + 26).toLocaleString("en-US")} bytes, over the limit of 262,144 bytes (MAX_FILE_BYTES, a fixed limit: see Limits in docs/pipelines.md)`,
    ]);
    expect(problems(`jobs: ${"[".repeat(5_000)}${"]".repeat(5_000)}\n`)[0]).toMatch(
      /^p\.yml:1:\d+: maps and lists nest too deep here: over the limit of 32 levels of nesting \(MAX_YAML_DEPTH/,
    );
    let nested = "jobs:\n";
    for (let i = 0; i < 3_000; i++) nested += `${" ".repeat(i + 2)}k${i}:\n`;
    expect(problems(nested.slice(0, 200_000))[0]).toContain("MAX_YAML_DEPTH");
    expect(
      problems(`jobs: ${"[".repeat(MAX_YAML_DEPTH.max - 2)}${"]".repeat(MAX_YAML_DEPTH.max - 2)}\n`)[0],
    ).not.toContain("MAX_YAML_DEPTH");
    expect(problems(`jobs:\n  a:\n    needs: ${values(MAX_ITEMS.max + 1)}\n    run: echo\n`)[0]).toMatch(
      /^p\.yml:3:\d+: a map or list reaches too many entries here: over the limit of 1,000 entries in one map or list \(MAX_ITEMS/,
    );
    expect(problems(jobs(2_000))[0]).toContain("MAX_ITEMS");
  });

  it("durations: a timer can't wait longer, so `timeout: 30d` would time a job out as it starts", () => {
    expect(MAX_DURATION.max).toBeLessThan(2 ** 31);
    expect(problems("jobs:\n  a:\n    timeout: 24d\n    run: echo\n")).toEqual([]);
    expect(
      problems("jobs:\n  a:\n    timeout: 30d\n    run: echo\n  b:\n    poll: { run: echo, every: 25d }\n"),
    ).toEqual([
      "p.yml:3:14: `timeout` of job `a` is `30d`, over the limit of 24 days (MAX_DURATION, a fixed limit: see Limits in docs/pipelines.md)",
      "p.yml:6:31: `poll.every` of job `b` is `25d`, over the limit of 24 days (MAX_DURATION, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
  });

  it("input values given to a run", () => {
    const pipeline = parsePipeline("inputs:\n  tag: { type: string }\njobs:\n  a:\n    run: echo\n", "p.yml");
    expect(
      planRun(pipeline, { inputs: { tag: "x".repeat(MAX_INPUT_BYTES.max) }, tiers: [] }).inputs.tag,
    ).toHaveLength(MAX_INPUT_BYTES.max);
    try {
      planRun(pipeline, { inputs: { tag: "é".repeat(MAX_INPUT_BYTES.max / 2 + 1) }, tiers: [] });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(PipelineInputError);
      expect((error as PipelineInputError).problems).toEqual([
        'input "tag" is 65,538 bytes, over the limit of 65,536 bytes in an input value (MAX_INPUT_BYTES, a fixed limit: see Limits in docs/pipelines.md)',
      ]);
    }
  });

  it("refuses any file up to the size limit quickly, however it is shaped", () => {
    const near = (unit: string) => unit.repeat(Math.floor((MAX_FILE_BYTES.max - 100) / unit.length));
    const shapes = [
      `jobs:\n  a:\n    run: echo\n    matrix:\n${near("      a: [1]\n")}`,
      `jobs:\n  a:\n    run: ${near(`\${{ inputs.x }}`)}\n`,
      `jobs:\n  a:\n    if: ${near("!")}true\n    run: echo\n`,
      `jobs:\n  a: { run: echo, needs: [${near("b, ")}b] }\n`,
      `jobs:\n  ${near("a")}: { run: echo }\n  b: { run: echo, needs: [${near("a").slice(0, 1_000)}b] }\n`,
      `x: &a [1, 2]\n${near("y: *a\n")}`,
      near("- "),
      near("{"),
    ];
    for (const source of shapes) {
      const started = performance.now();
      expect(problems(source).length).toBeGreaterThan(0);
      // Generous for a busy machine; without the limits some of these take minutes or overflow the stack.
      expect(performance.now() - started, source.slice(0, 60)).toBeLessThan(5_000);
    }
  });
});

describe("JSON nesting", () => {
  it("finds a text nested too deep without parsing it, strings aside", () => {
    expect(jsonTooDeep("[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH))).toBeUndefined();
    expect(jsonTooDeep("[".repeat(100_000))).toBe(MAX_JSON_DEPTH);
    expect(jsonTooDeep(`{"a": "${"[".repeat(1_000)}", "b": "\\"[[["}`)).toBeUndefined();
  });

  it("assertJson refuses a value nested deeper than the limit, as invalid input", () => {
    let value: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH; i++) value = [value];
    expect(() => assertJson(value, "payload")).not.toThrow();
    expect(() => assertJson([value], "payload")).toThrow(ValidationError);
    expect(() => assertJson({ a: [value] }, "payload")).toThrow(
      "payload nests arrays and objects deeper than the limit of 64 levels (MAX_JSON_DEPTH",
    );
  });
});
