/**
 * Child pipelines (`uses: ./other.yml`): what the parser accepts and refuses at its line, the tree of
 * used pipelines (inputs checked, cycles and depth refused), the texts a run keeps, and the outputs.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compileRun, pipelineOf } from "../../../src/pipeline/compile.js";
import type { UsesJob } from "../../../src/pipeline/model.js";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { PipelineError } from "../../../src/pipeline/problems.js";
import { childOutputs } from "../../../src/pipeline/uses.js";
import { usedPipelines } from "../../../src/pipeline/uses-tree.js";
import { formatProblem } from "../../../src/problems.js";
import { tempDir } from "../../helpers.js";

/** Every problem thrown by `fn`, as `validate` prints them (file names relative to `dir`). */
function problemsOf(fn: () => unknown, dir = ""): string[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PipelineError);
    return (error as PipelineError).problems.map((p) =>
      dir ? formatProblem(p).replaceAll(`${dir}/`, "") : formatProblem(p),
    );
  }
  throw new Error("expected problems");
}

const CHILD = `name: child
inputs:
  version:
  count: { type: number, default: 1 }
  fast: { type: boolean, default: false }
outputs:
  tag: v\${{ needs.build.outputs.tag }}
  none: \${{ needs.build.outputs.missing }}
jobs:
  build:
    run: echo "tag=\${{ inputs.version }}" >> "$SLIPWAY_OUTPUT"
`;

/** A directory with these files written. */
function files(texts: Record<string, string>): string {
  const dir = tempDir();
  for (const [name, text] of Object.entries(texts)) writeFileSync(join(dir, name), text);
  return dir;
}

describe("parsing uses:", () => {
  it("reads the path, the with: values (expressions kept), needs, if and timeout", () => {
    const pipeline = parsePipeline(
      `jobs:
  plan:
    run: echo
  release:
    needs: plan
    if: \${{ needs.plan.outputs.go == 'yes' }}
    uses: ./child.yml
    with:
      version: \${{ needs.plan.outputs.version }}
      count: 3
      fast: true
    timeout: 1h
`,
      "p.yml",
    );
    const job = pipeline.jobs[1] as UsesJob;
    expect(job).toMatchObject({ kind: "uses", uses: "./child.yml", needs: ["plan"], timeoutMs: 3_600_000 });
    expect(job.usesPos).toMatchObject({ line: 7, col: 11 });
    expect(job.with.count!.value).toBe(3);
    expect(job.with.fast!.value).toBe(true);
    expect(job.with.version!.value).toMatchObject({ source: "${{ needs.plan.outputs.version }}" });
  });

  it("takes a matrix, written out or decided at run time, whose values with: reads", () => {
    const pipeline = parsePipeline(
      `jobs:
  plan:
    run: echo
  each:
    needs: plan
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    uses: ./child.yml
    with: { version: "\${{ matrix.value }}" }
  legs:
    matrix: { arch: [x86, arm] }
    uses: ./child.yml
    with: { version: "\${{ matrix.arch }}" }
`,
      "p.yml",
    );
    expect(pipeline.jobs[1]).toMatchObject({ kind: "uses", runTimeMatrix: { from: expect.anything() } });
    expect(pipeline.jobs[2]).toMatchObject({ kind: "uses", matrix: { axes: { arch: ["x86", "arm"] } } });
    expect(
      problemsOf(() =>
        parsePipeline('jobs:\n  a:\n    uses: ./c.yml\n    with: { v: "${{ matrix.os }}" }\n', "p.yml"),
      ),
    ).toEqual([expect.stringMatching(/^p\.yml:4:\d+: `with\.v` of job `a`: .*matrix/)]);
  });

  it("refuses at their lines what a uses job can't have, with: without uses, and unknown reads", () => {
    expect(
      problemsOf(() =>
        parsePipeline(
          `jobs:
  a:
    uses: ./child.yml
    undo: echo
    resources: { memory: 1GiB }
    env: { A: b }
    with:
      x: \${{ needs.b.outputs.y }}
      y: [1]
      z: \${{ env.A }}
  b:
    run: echo
    with: { x: 1 }
  c:
    uses: child
`,
          "p.yml",
        ),
      ),
    ).toEqual([
      "p.yml:4:5: `undo` applies to `run` jobs only (job `a` uses another pipeline)",
      "p.yml:5:5: `resources` applies to `run` jobs only (job `a` uses another pipeline): the child pipeline's jobs declare what they need, and this job holds nothing while it waits",
      "p.yml:6:5: `env` applies to `run` jobs only (job `a` uses another pipeline): give the child pipeline what it needs as inputs in `with:`",
      "p.yml:8:20: `with.x` of job `a`: job `a` can only read outputs of the jobs it needs: add `b` to its `needs`",
      "p.yml:9:10: `with.y` of job `a` must be a string, a number or a boolean, got a list",
      expect.stringMatching(/^p\.yml:10:\d+: `with\.z` of job `a`: `env` is set for commands/),
      "p.yml:13:5: `with` gives inputs to the pipeline a job `uses`: job `b` has no `uses`",
      "p.yml:15:11: `uses` of job `c` must name a pipeline file (`./other.yml`, relative to this file), got `child`",
    ]);
  });

  it("reads outputs: over any job's outputs, and refuses other reads", () => {
    const pipeline = parsePipeline(CHILD, "child.yml");
    expect(Object.keys(pipeline.outputs!)).toEqual(["tag", "none"]);
    expect(
      problemsOf(() =>
        parsePipeline(
          "outputs:\n  a: ${{ inputs.x }}\n  b: ${{ needs.nope.outputs.c }}\njobs:\n  j: { run: x }\n",
          "p.yml",
        ),
      ),
    ).toEqual([
      expect.stringMatching(/^p\.yml:2:\d+: `outputs\.a`: .*can read only `needs/),
      expect.stringMatching(/^p\.yml:3:\d+: `outputs\.b`: .*nope/),
    ]);
  });
});

describe("the pipelines uses: reach", () => {
  it("checks with: against the used pipeline's inputs, pointing at the lines", () => {
    const dir = files({
      "child.yml": CHILD,
      "p.yml": `jobs:
  a:
    uses: ./child.yml
    with:
      versoin: x
      count: many
      fast: \${{ inputs.x }}
  b:
    uses: ./nope.yml
  c:
    uses: ./broken.yml
`,
      "broken.yml": "jobs:\n  j: { run: x, bogus: 1 }\n",
    });
    const pipeline = parsePipeline(`inputs: { x: {} }\n${readText(dir, "p.yml")}`, join(dir, "p.yml"));
    expect(problemsOf(() => usedPipelines(pipeline, parsePipeline), dir)).toEqual([
      "p.yml:6:7: `with.versoin` of job `a`: child.yml has no input `versoin` (inputs: `version`, `count` and `fast`) (did you mean `version`?)",
      'p.yml:7:14: `with.count` of job `a`: input "count" must be a number, got "many"',
      "p.yml:4:11: job `a` uses child.yml, whose input `version` is required: give it in `with:`",
      "p.yml:10:11: job `b` uses nope.yml, which does not exist",
      "p.yml:12:11: job `c` uses broken.yml, which has problems:",
      expect.stringMatching(/^broken\.yml:2:\d+: .*bogus/),
    ]);
  });

  it("refuses a cycle and nesting past MAX_USES_DEPTH", () => {
    const cycle = files({
      "a.yml": "jobs:\n  x:\n    uses: ./b.yml\n",
      "b.yml": "jobs:\n  y:\n    uses: ./a.yml\n",
    });
    const a = parsePipeline(readText(cycle, "a.yml"), join(cycle, "a.yml"));
    expect(problemsOf(() => usedPipelines(a, parsePipeline), cycle)).toEqual([
      expect.stringMatching(
        /^b\.yml:3:11: pipelines use each other in a cycle: .*a\.yml -> .*b\.yml -> .*a\.yml$/,
      ),
    ]);
    const self = files({ "s.yml": "jobs:\n  x:\n    uses: ./s.yml\n" });
    const s = parsePipeline(readText(self, "s.yml"), join(self, "s.yml"));
    expect(problemsOf(() => usedPipelines(s, parsePipeline), self)[0]).toMatch(
      /cycle: .*s\.yml -> .*s\.yml$/,
    );

    const deep = files({
      "l0.yml": "jobs:\n  x:\n    uses: ./l1.yml\n",
      "l1.yml": "jobs:\n  x:\n    uses: ./l2.yml\n",
      "l2.yml": "jobs:\n  x:\n    uses: ./l3.yml\n",
      "l3.yml": "jobs:\n  x:\n    uses: ./l4.yml\n",
      "l4.yml": "jobs:\n  x:\n    uses: ./l5.yml\n",
      "l5.yml": "jobs:\n  x:\n    run: echo\n",
    });
    const l0 = parsePipeline(readText(deep, "l0.yml"), join(deep, "l0.yml"));
    expect(problemsOf(() => usedPipelines(l0, parsePipeline), deep)).toEqual([
      "l4.yml:3:11: job `x` uses l5.yml 5 deep, over the limit of 4 levels of pipelines using pipelines (MAX_USES_DEPTH, a fixed limit: see Limits in docs/pipelines.md)",
    ]);
  });

  it("is kept in the run's spec when it starts: a later edit of the file changes no saga rebuilt from it", () => {
    const dir = files({
      "child.yml": CHILD,
      "p.yml": "jobs:\n  r:\n    uses: ./child.yml\n    with: { version: '1' }\n",
    });
    const file = join(dir, "p.yml");
    const runtime = { dataDir: dir };
    const first = compileRun(file, readText(dir, "p.yml"), { inputs: {}, tiers: [] }, runtime);
    expect(first.spec.pipelines).toEqual({ [join(dir, "child.yml")]: CHILD });
    writeFileSync(join(dir, "child.yml"), "inputs: { version: {} }\njobs:\n  other:\n    run: echo\n");
    const again = compileRun(file, first.spec.source, first.spec, runtime);
    expect(again.saga.version).toBe(first.saga.version);
    expect(again.spec.pipelines).toEqual(first.spec.pipelines);
    // A new run reads the file as it is now: another text, another version.
    const edited = compileRun(file, readText(dir, "p.yml"), { inputs: {}, tiers: [] }, runtime);
    expect(edited.saga.version).not.toBe(first.saga.version);
    // A pipeline without uses: keeps no texts, and its versions stay as before.
    expect(
      compileRun(join(dir, "child.yml"), CHILD, { inputs: { version: "1" }, tiers: [] }, runtime).spec,
    ).not.toHaveProperty("pipelines");
  });
});

describe("the outputs of a uses job", () => {
  it("renders the child pipeline's outputs: over its jobs' results; unset ones are empty, none without outputs:", () => {
    const child = pipelineOf(CHILD, "child.yml");
    const values = { build: { status: "success", outputs: { tag: "1.2.3" } } };
    expect(childOutputs(child, values)).toEqual({ tag: "v1.2.3", none: "" });
    // Matrix legs (`build.linux`) merge in order, later ones winning.
    const legs = {
      "build.linux": { status: "success", outputs: { tag: "a" } },
      "build.mac": { status: "success", outputs: { tag: "b" } },
    };
    expect(childOutputs(child, legs).tag).toBe("vb");
    expect(childOutputs(pipelineOf("jobs:\n  build: { run: x }\n", "plain.yml"), values)).toEqual({});
  });
});

function readText(dir: string, name: string): string {
  return readFileSync(join(dir, name), "utf8");
}
