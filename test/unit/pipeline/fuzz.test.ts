/**
 * Property-based: generated and mutated pipeline files go through validate (parse) and compile
 * (plan + saga) and are either accepted or refused with a PipelineError (PipelineInputError for a
 * run's values): never another exception, never a stack overflow, never a hang. 10,000 cases in all
 * (5,000 generated, 5,000 mutated), small sizes, a few seconds on a busy 2-core machine; a failure
 * prints fast-check's seed and the shrunk file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { compileRun } from "../../../src/pipeline/compile.js";
import type { Pipeline } from "../../../src/pipeline/model.js";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { PipelineError, PipelineInputError } from "../../../src/pipeline/problems.js";

/** Over this, one file took long enough to suggest work that grows out of proportion to its size. */
const SLOW_MS = 2_000;

/** Validates and, when that passes, compiles `source` with a value for every input; returns what happened. */
function check(source: string): "ok" | "refused" {
  const started = performance.now();
  try {
    let pipeline: Pipeline;
    try {
      pipeline = parsePipeline(source, "fuzz.yml");
    } catch (error) {
      if (error instanceof PipelineError) return "refused";
      throw error;
    }
    const inputs = Object.fromEntries(
      Object.values(pipeline.inputs).map((input) => [
        input.name,
        input.type === "choice"
          ? (input.options?.[0] ?? "x")
          : input.type === "boolean"
            ? "true"
            : input.type === "number"
              ? "1"
              : "x",
      ]),
    );
    const tiers = pipeline.jobs.flatMap((job) => (job.tier === undefined ? [] : [job.tier]));
    try {
      compileRun("fuzz.yml", source, { inputs, tiers }, { dataDir: "/nonexistent" });
      return "ok";
    } catch (error) {
      if (error instanceof PipelineError || error instanceof PipelineInputError) return "refused";
      throw error;
    }
  } finally {
    const ms = performance.now() - started;
    // biome-ignore lint/correctness/noUnsafeFinally: a slow file fails the property whatever it gave
    if (ms > SLOW_MS) throw new Error(`one file took ${Math.round(ms)} ms:\n${source}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Generated pipelines: the keys the parser knows, with values of the right shape; now and then one
// of the wrong shape (the mutations below break the rest).

const jobName = fc.constantFrom("build", "test", "deploy", "lint", "a", "b-2", "x_y");
const name = fc.constantFrom("linux", "arm64", "v1", "swarm", "db");
const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(name, fc.string({ maxLength: 6 }), fc.integer({ min: -2, max: 300 }), fc.boolean()),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.oneof(name, jobName), tie("value"), { maxKeys: 3 }),
  ),
})).value;
/** Usually a value of the right shape; rarely anything, so refusals are exercised too. */
const sometimesWrong = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 30, arbitrary: good }, anyValue);
/** A key that is usually absent. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, sometimesWrong(arbitrary));
const optional = { requiredKeys: [] as never[] };

const reference = fc.constantFrom("inputs.tag", "inputs.flag", "true", "null", "3", "'v1'");
const operator = fc.constantFrom("==", "!=", "&&", "||");
const expression = fc
  .tuple(reference, fc.array(fc.tuple(operator, reference), { maxLength: 2 }), fc.constantFrom("", "!", "("))
  .map(([first, rest, prefix]) => {
    const text = [first, ...rest.flat()].join(" ");
    return prefix === "(" ? `(${text})` : `${prefix}${text}`;
  });
const template = fc.oneof(
  fc.constantFrom("true", "echo ok", "exit 0"),
  expression.map((e) => `echo \${{ ${e} }}`),
);
const duration = fc.constantFrom("30s", "5m", "1h", "1.5m", "250ms");
const matrixValue = fc.oneof(name, fc.integer({ min: 0, max: 20 }), fc.boolean());

const matrix = fc.record(
  {
    os: fc.uniqueArray(matrixValue, { minLength: 1, maxLength: 4 }),
    arch: rarely(fc.uniqueArray(matrixValue, { minLength: 1, maxLength: 3 })),
    include: rarely(fc.array(fc.record({ os: matrixValue, if: expression }, optional), { maxLength: 2 })),
  },
  { requiredKeys: ["os"] },
);

const common = {
  needs: rarely(fc.oneof(jobName, fc.uniqueArray(jobName, { maxLength: 3 }))),
  if: rarely(
    fc.oneof(
      expression,
      expression.map((e) => `\${{ ${e} }}`),
      fc.boolean(),
    ),
  ),
  env: rarely(fc.dictionary(fc.constantFrom("REGISTRY", "TAG"), template, { maxKeys: 2 })),
  working_directory: rarely(fc.constantFrom(".", "sub")),
  tier: rarely(fc.constantFrom("extra", "slow")),
};
const runJob = fc.record({
  ...common,
  run: sometimesWrong(template),
  matrix: rarely(matrix),
  resources: rarely(
    fc.record(
      {
        memory: fc.constantFrom("1GiB", "512MiB", "auto"),
        cpu: fc.integer({ min: 1, max: 4 }),
        locks: fc.uniqueArray(name, { maxLength: 2 }),
      },
      optional,
    ),
  ),
  undo: rarely(template),
  cleanup: rarely(template),
  ready: rarely(
    fc.record(
      {
        run: template,
        every: duration,
        crash_loop: fc.record({ failures: fc.integer({ min: 1, max: 5 }), within: duration }, optional),
      },
      { requiredKeys: ["run"] },
    ),
  ),
  retries: rarely(fc.integer({ min: 0, max: 5 })),
  timeout: rarely(duration),
});
const waitJob = fc.record({
  ...common,
  wait: sometimesWrong(fc.record({ signal: name, timeout: duration }, { requiredKeys: ["signal"] })),
});
const pollJob = fc.record({
  ...common,
  poll: sometimesWrong(
    fc.record(
      { run: template, every: duration, retries: fc.integer({ min: 0, max: 3 }) },
      { requiredKeys: ["run"] },
    ),
  ),
});
const job = fc.oneof({ weight: 6, arbitrary: runJob }, waitJob, pollJob);

const pipelineObject = fc.record({
  name: rarely(fc.constantFrom("ci", "release", "deploy.prod")),
  inputs: sometimesWrong(
    fc.record({
      tag: fc.constant({ default: "v1" }),
      flag: fc.oneof(fc.constant({ type: "boolean", default: false }), fc.constant({ default: true })),
      level: rarely(fc.constant({ type: "choice", options: ["low", "high"], default: "low" })),
    }),
  ),
  env: rarely(fc.dictionary(fc.constantFrom("REGISTRY", "TAG"), template, { maxKeys: 2 })),
  secrets: rarely(
    fc.dictionary(fc.constantFrom("TOKEN", "KEY"), fc.record({ env: fc.constantFrom("HOME", "X") })),
  ),
  on_failure: rarely(fc.constantFrom("compensate", "hold")),
  concurrency: rarely(
    fc.record(
      { key: template, limit: fc.integer({ min: 1, max: 3 }), cancel_in_progress: fc.boolean() },
      optional,
    ),
  ),
  priority: rarely(fc.integer({ min: -5, max: 5 })),
  jobs: sometimesWrong(fc.dictionary(jobName, job, { minKeys: 1, maxKeys: 3 })),
});

const generated = pipelineObject.map((object) => stringify(object));

// ------------------------------------------------------------------------------------------------
// Mutated pipelines: real files (the examples, the test fixtures) and generated ones, edited as text.

const root = join(import.meta.dirname, "../../..");
const corpus = [
  ...readdirSync(join(root, "examples"))
    .filter((f) => f.endsWith(".yml"))
    .map((f) => readFileSync(join(root, "examples", f), "utf8")),
  readFileSync(join(import.meta.dirname, "fixtures/release.yml"), "utf8"),
];
const fragment = fc.oneof(
  fc.constantFrom(
    "${{",
    "}}",
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "\n  ",
    "  ",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "'",
    '"',
    "#",
    "|\n",
    "needs: [",
    "matrix: {x: [1, 2]}",
    "!".repeat(40),
    "(".repeat(40),
  ),
  fc.string({ maxLength: 6 }),
);
type Edit = { kind: "insert" | "delete" | "duplicate" | "swap"; at: number; length: number; text: string };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom("insert", "delete", "duplicate", "swap"),
  at: fc.nat(),
  length: fc.nat({ max: 40 }),
  text: fragment,
});

function applyEdit(source: string, e: Edit): string {
  const at = source.length === 0 ? 0 : e.at % source.length;
  switch (e.kind) {
    case "insert":
      return source.slice(0, at) + e.text + source.slice(at);
    case "delete":
      return source.slice(0, at) + source.slice(at + e.length);
    case "duplicate":
      return source.slice(0, at + e.length) + source.slice(at, at + e.length) + source.slice(at + e.length);
    case "swap": {
      const lines = source.split("\n");
      const i = at % lines.length;
      const j = (at + e.length) % lines.length;
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join("\n");
    }
  }
}

const mutated = fc
  .tuple(fc.oneof(fc.constantFrom(...corpus), generated), fc.array(edit, { minLength: 1, maxLength: 4 }))
  .map(([source, edits]) => edits.reduce(applyEdit, source));

describe("pipelines, generated and mutated", () => {
  it("5,000 generated pipelines are accepted or refused with problems", () => {
    const outcomes = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(generated, (source) => {
        outcomes[check(source)]++;
      }),
      { numRuns: 5_000 },
    );
    // Both outcomes are reached, so the generator is not stuck on one side.
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });

  it("5,000 mutated pipelines are accepted or refused with problems", () => {
    const outcomes = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(mutated, (source) => {
        outcomes[check(source)]++;
      }),
      { numRuns: 5_000 },
    );
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});
