/** Loop jobs in pipeline files: what they parse to, and each mistake reported at its line and column. */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { describe, expect, it } from "vitest";
import type { LoopJob } from "../../../src/pipeline/model.js";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { planRun } from "../../../src/pipeline/plan.js";
import { PipelineError } from "../../../src/pipeline/problems.js";
import { formatProblem } from "../../../src/problems.js";

function problems(source: string): string[] {
  try {
    parsePipeline(source, "p.yml");
  } catch (error) {
    expect(error).toBeInstanceOf(PipelineError);
    return (error as PipelineError).problems.map((p) => formatProblem(p).replace(/^p\.yml:/, ""));
  }
  throw new Error("expected the pipeline to be rejected");
}

const GOOD = `inputs:
  package: { default: podman }
jobs:
  prepare:
    run: echo prepared
  attempts:
    needs: [prepare]
    loop:
      max: 10
      until: \${{ needs.result.outputs.result == 'passed' }}
      reason: "last build failed: \${{ needs.result.outputs.error }}"
    jobs:
      fix:
        run: ./agent fix \${{ inputs.package }} \${{ loop.iteration }} "\${{ loop.previous.result.outputs.error }}" \${{ needs.prepare.outputs.branch }}
      build:
        needs: [fix]
        poll:
          run: ./status \${{ needs.fix.outputs.patch }}
          every: 1s
      result:
        needs: [build]
        run: ./result
        undo: ./forget \${{ outputs.result }}
  open:
    needs: [attempts]
    run: ./open \${{ needs.attempts.outputs.nvr }}
`;

describe("a loop job", () => {
  it("parses to its settings and its body, planned as one step whose body needs what the loop needs", () => {
    const pipeline = parsePipeline(GOOD, "p.yml");
    const loop = pipeline.jobs.find((j) => j.name === "attempts") as LoopJob;
    expect(loop).toMatchObject({
      kind: "loop",
      needs: ["prepare"],
      loop: {
        max: 10,
        until: { source: "${{ needs.result.outputs.result == 'passed' }}" },
        reason: { source: "last build failed: ${{ needs.result.outputs.error }}" },
        pos: { line: 8, col: 5 },
      },
    });
    expect(loop.jobs.map((j) => [j.name, j.kind, j.needs])).toEqual([
      ["fix", "run", []],
      ["build", "poll", ["fix"]],
      ["result", "run", ["build"]],
    ]);
    const plan = planRun(pipeline, { inputs: {}, tiers: [] });
    expect(plan.steps.map((s) => s.action)).toEqual(["prepare", "attempts", "open"]);
    expect(plan.steps[1]!.body!.map((s) => [s.action, s.needs])).toEqual([
      ["fix", ["prepare"]],
      ["build", ["fix", "prepare"]],
      ["result", ["build", "prepare"]],
    ]);
  });

  it("reports a missing `loop` or `jobs`, bad settings, and keys that belong on its jobs", () => {
    expect(
      problems(`jobs:
  a:
    jobs: { b: { run: x } }
  c:
    loop: { max: 0, until: "\${{ needs.d.outputs.ok }}", whiel: x }
    run: x
  e:
    loop: { max: 1000, until: true }
    jobs: {}
  f:
    loop: { until: true }
    jobs: { g: { run: x } }
`),
    ).toEqual([
      "2:3: loop job `a` needs `loop`, e.g. `loop: { max: 10, until: ${{ needs.<job>.outputs.<name> == 'passed' }} }`",
      "4:3: loop job `c` needs `jobs`, e.g. `jobs: { fix: { run: ... } }`",
      "5:18: `loop.max` of job `c` must be a whole number 1 or more, got `0`",
      "5:39: `loop.until` of job `c`: unknown job `d` (did you mean `a`?)",
      "5:57: unknown key `whiel` in `loop` of job `c` (allowed: `max`, `until` or `reason`)",
      "6:5: unknown key `run` in loop job `c`: a loop job runs its `jobs`: put it on one of them (did you mean `jobs`?)",
      "8:18: `loop.max` of job `e` is 1000, over the limit of 100 iterations of a loop (MAX_LOOP_ITERATIONS, a fixed limit: see Limits in docs/pipelines.md)",
      "9:5: `jobs` of loop job `e` is empty: a loop needs at least one job",
      "11:5: `loop.max` of job `f` is missing: how many iterations at most, e.g. `max: 10`",
    ]);
  });

  it("refuses what its jobs can't have in this version (a loop, a matrix, a tier, a probe, a name of the pipeline's) and a cycle among them", () => {
    expect(
      problems(`jobs:
  build:
    run: x
  a:
    loop: { max: 2, until: true }
    jobs:
      inner:
        loop: { max: 2, until: true }
        jobs: { x: { run: x } }
      legs:
        matrix: { os: [a, b] }
        run: x
      packages:
        needs: [legs]
        matrix: \${{ fromJSON(needs.build.outputs.list) }}
        run: x \${{ matrix.value }}
      heavy:
        tier: extra
        run: x
      deploy:
        run: x
        ready: { run: y }
      build:
        run: x
      one:
        needs: [two]
        run: x
      two:
        needs: [one]
        run: x
`),
    ).toEqual([
      "7:7: job `inner` is a loop inside loop `a`: loops don't nest in this version",
      "11:9: `matrix` of job `legs` in loop `a`: a loop's jobs have no `matrix` in this version",
      // A matrix decided at run time too, and nothing else of it is reported.
      "15:9: `matrix` of job `packages` in loop `a`: a loop's jobs have no `matrix` in this version",
      "18:9: `tier` of job `heavy` in loop `a`: set `tier` on the loop job",
      "22:9: `ready` of job `deploy` in loop `a`: a loop's jobs have no `ready` in this version: poll for it in a job of its own",
      "23:7: job `build` of loop `a` has the name of a job of the pipeline: give it another",
      "29:17: dependency cycle: one -> two -> one",
    ]);
  });

  it("checks what expressions read: `loop` only in a loop, `loop.previous` of its own jobs, outer jobs through the loop's `needs`", () => {
    expect(
      problems(`jobs:
  prepare:
    run: echo
  other:
    run: echo \${{ loop.iteration }}
  a:
    loop:
      max: 3
      until: \${{ loop.previous.fix.outputs.ok }}
      reason: \${{ inputs.x }}
    jobs:
      fix:
        run: echo \${{ loop.previous.fx.outputs.e }} \${{ loop.iteration.x }} \${{ loop.round }}
      check:
        needs: [fix, prepare]
        run: echo \${{ needs.prepare.outputs.x }} \${{ loop.previous.check }}
`),
    ).toEqual([
      "5:19: `run` of job `other`: `loop` can be read only by the jobs of a loop (the `jobs:` of a job with `loop:`) and by its `until` and `reason`",
      "9:14: `loop.until` of job `a` reads this iteration's jobs: write `needs.fix...`, not `loop.previous.fix...`",
      "10:19: `loop.reason` of job `a`: `until` and `reason` read this iteration's jobs (`needs.<job>.outputs.<name>`) and `loop.iteration`",
      "13:37: `run` of job `fix`: `loop.previous` reads the loop's own jobs, and `fx` is not one of them (`fix` and `check`) (did you mean `fix`?)",
      "13:72: `run` of job `fix`: `loop.iteration` is a plain value: it has no `x`",
      "13:86: `run` of job `fix`: unknown loop field `round` (fields: `iteration` and `previous`)",
      "15:22: job `check` is in a loop, whose jobs need each other only: add `prepare` to the loop job's `needs`, and its jobs read it without listing it",
      "16:29: `run` of job `check`: a loop's jobs read outputs of the jobs the loop job needs: add `prepare` to the loop job's `needs`",
      "16:54: `run` of job `check`: write `loop.previous.<job>.outputs.<name>`: the previous iteration's jobs' outputs",
    ]);
  });
});
