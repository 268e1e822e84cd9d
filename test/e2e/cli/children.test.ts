/**
 * Child pipelines (`uses: ./other.yml`) with the real CLI: outputs flow to the parent, a child's
 * failure rolls the parent back, a cancel of the parent cancels the child, an undo of the parent
 * undoes the completed child, and after kill -9 `resume` continues both with each job run once.
 */

import { describe, expect, it } from "vitest";
import { eventually } from "../../wait.js";
import { Project, processesWith, runId, uniqueSleep } from "./harness.js";

const PARENT = `name: parent
jobs:
  plan:
    run: echo plan >> trace; echo "version=1.2.3" >> "$SLIPWAY_OUTPUT"
    undo: echo "undo plan" >> trace
  release:
    needs: plan
    uses: ./child.yml
    with:
      version: \${{ needs.plan.outputs.version }}
      flavour: fast
  after:
    needs: release
    run: echo "after \${{ needs.release.outputs.tag }}" >> trace; ./after
`;

/** `slow` runs `./slow` (each test writes it); `build` outputs the tag the parent reads. */
const CHILD = `name: child
inputs:
  version:
  flavour:
    type: choice
    options: [fast, slow]
outputs:
  tag: v\${{ needs.build.outputs.tag }}
jobs:
  build:
    run: echo "build \${{ inputs.flavour }}" >> trace; echo "tag=\${{ inputs.version }}" >> "$SLIPWAY_OUTPUT"
    undo: echo "undo build" >> trace
  slow:
    needs: build
    run: ./slow
`;

interface Detail {
  id: string;
  status: string;
  parent: { runId: string; step: string } | null;
  children: Array<{ id: string; status: string; step: string }>;
}

function project(slow: string, after = "true"): Project {
  const p = new Project();
  p.write("parent.yml", PARENT);
  p.write("child.yml", CHILD);
  p.tool("slow", `echo slow >> trace\n${slow}`);
  p.tool("after", after);
  return p;
}

async function detail(p: Project, id: string): Promise<Detail> {
  const shown = await p.run(["show", id, "--json"]);
  expect(shown.code, shown.stderr).toBe(0);
  return JSON.parse(shown.stdout) as Detail;
}

describe("child pipelines (uses:)", () => {
  it("runs the child with its inputs and gives its outputs to the jobs after", async () => {
    const p = project("true");
    const result = await p.run(["run", "parent.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "after v1.2.3"]);
    const id = runId(result.stdout);
    const parent = await detail(p, id);
    expect(parent.children).toMatchObject([{ id: `${id}.release`, status: "completed", step: "release" }]);
    const child = await detail(p, `${id}.release`);
    expect(child.parent).toEqual({ runId: id, step: "release" });
    // A run of its own: listed, and shown with a link to its parent.
    const listed = await p.run(["ls"]);
    expect(listed.stdout).toMatch(new RegExp(`${id}\\.release +- +child +completed`));
    const shown = await p.run(["show", `${id}.release`]);
    expect(shown.stdout).toMatch(new RegExp(`parent +${id} \\(step release\\)`));
  });

  it("keeps the child's text from the start: editing it while the run waits changes nothing", async () => {
    const p = project("while [ ! -e go ]; do sleep 0.05; done");
    const running = p.start(["run", "parent.yml"]);
    await eventually(() => p.count("slow") === 1, "the child's slow job");
    p.write("child.yml", CHILD.replace("v${{", "changed-${{"));
    p.write("go", "");
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(p.trace()).toContain("after v1.2.3");
  });

  it("fails the parent's job when the child fails, and the parent undoes what it did", async () => {
    const p = project("exit 3");
    const result = await p.run(["run", "parent.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/release failed: child run \S+\.release failed: .*slow.*exit 3/);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "undo build", "undo plan"]);
    const id = runId(result.stdout);
    expect((await detail(p, id)).status).toBe("compensated");
    expect((await detail(p, `${id}.release`)).status).toBe("compensated");
  });

  it("undoes the completed child when a later job of the parent fails", async () => {
    const p = project("true", "exit 4");
    const result = await p.run(["run", "parent.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "after v1.2.3", "undo build", "undo plan"]);
    const id = runId(result.stdout);
    expect((await detail(p, `${id}.release`)).status).toBe("compensated");
  });

  it("cancels the child when the parent is cancelled", async () => {
    const sleep = uniqueSleep();
    const p = project(`sleep ${sleep} & wait`);
    const running = p.start(["run", "parent.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the child's sleep");
    const id = await running.runId();
    const cancel = await p.run(["cancel", id, "--reason", "not today"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "undo build", "undo plan"]);
    expect((await detail(p, id)).status).toBe("cancelled");
    expect((await detail(p, `${id}.release`)).status).toBe("cancelled");
  });

  it("fails the parent's job when the child alone is cancelled", async () => {
    const sleep = uniqueSleep();
    const p = project(`sleep ${sleep} & wait`);
    const running = p.start(["run", "parent.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the child's sleep");
    const id = await running.runId();
    expect((await p.run(["cancel", `${id}.release`])).code).toBe(0);
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/release failed: child run \S+ failed: cancelled/);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "undo build", "undo plan"]);
    expect((await detail(p, id)).status).toBe("compensated");
  });

  it("after kill -9 while the child runs, resume of the parent finishes both, each job once", async () => {
    const sleep = uniqueSleep();
    // The first attempt of slow hangs; the one after the crash finds its marker and goes on.
    const p = project(
      `if [ ! -e slow.once ]; then touch slow.once; sleep ${sleep} & wait; fi\necho "slow done" >> trace`,
    );
    const running = p.start(["run", "parent.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the child's sleep");
    const id = await running.runId();
    running.child.kill("SIGKILL");
    await running.done;

    const resumed = await p.run(["resume", id]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`run ${id}\\.release: killed \\d+ leftover process`));
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    expect(p.trace()).toEqual(["plan", "build fast", "slow", "slow", "slow done", "after v1.2.3"]);
    expect((await detail(p, id)).status).toBe("completed");
    const child = await p.show(`${id}.release`);
    expect(child.status).toBe("completed");
    expect(child.steps.map((s) => [s.job, s.attempt])).toEqual([
      ["build", 1],
      ["slow", 2],
    ]);
    // The child's end reached the parent once: its step completed on the first attempt.
    const parent = await p.show(id);
    expect(parent.steps.find((s) => s.job === "release")).toMatchObject({ status: "completed", attempt: 1 });
  });

  it("refuses a cycle and a wrong `with:` before anything runs, pointing at the lines", async () => {
    const p = new Project();
    p.write("child.yml", CHILD);
    p.write("a.yml", "jobs:\n  x:\n    uses: ./b.yml\n");
    p.write("b.yml", "jobs:\n  y:\n    uses: ./a.yml\n");
    p.write(
      "bad.yml",
      "jobs:\n  r:\n    uses: ./child.yml\n    with:\n      versoin: 1\n      flavour: medium\n  c:\n    uses: ./a.yml\n",
    );
    const result = await p.run(["validate", "bad.yml"]);
    expect(result.code).toBe(2);
    expect(result.stderr.split("\n").filter(Boolean)).toEqual([
      "bad.yml:5:7: `with.versoin` of job `r`: child.yml has no input `versoin` (inputs: `version` and `flavour`) (did you mean `version`?)",
      'bad.yml:6:16: `with.flavour` of job `r`: input "flavour" must be one of `fast` or `slow`, got "medium"',
      "bad.yml:3:11: job `r` uses child.yml, whose input `version` is required: give it in `with:`",
      "b.yml:3:11: pipelines use each other in a cycle: a.yml -> b.yml -> a.yml",
    ]);
    const run = await p.run(["run", "a.yml"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("pipelines use each other in a cycle: a.yml -> b.yml -> a.yml");
    expect(p.trace()).toEqual([]);
  });
});

describe("a matrix of child runs (uses: with a matrix decided at run time)", () => {
  const ALL = `name: backport-all
jobs:
  plan:
    run: echo 'packages=["libfoo","libbar"]' >> "$SLIPWAY_OUTPUT"
  backport:
    needs: plan
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    uses: ./backport-one.yml
    with:
      package: \${{ matrix.value }}
  report:
    needs: backport
    run: echo "report \${{ needs.backport.outputs.nvr }}" >> trace
`;
  const ONE = `name: backport-one
inputs:
  package:
outputs:
  nvr: \${{ needs.build.outputs.nvr }}
jobs:
  build:
    run: ./build "\${{ inputs.package }}"
    undo: echo "undo \${{ inputs.package }}" >> trace
`;

  it("starts one child run per item the plan listed, and the jobs after read their outputs", async () => {
    const p = new Project();
    p.write("all.yml", ALL);
    p.write("backport-one.yml", ONE);
    p.tool("build", `echo "build $1" >> trace; echo "nvr=$1-1.0" >> "$SLIPWAY_OUTPUT"`);
    const result = await p.run(["run", "all.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(p.trace().slice(0, 2).sort()).toEqual(["build libbar", "build libfoo"]);
    // The legs' outputs merge, the later leg winning, as after any matrix job.
    expect(p.trace()[2]).toBe("report libbar-1.0");
    const id = runId(result.stdout);
    const parent = await detail(p, id);
    expect(parent.children.map((c) => [c.id, c.status]).sort()).toEqual([
      [`${id}.backport~1.backport`, "completed"],
      [`${id}.backport~2.backport`, "completed"],
    ]);
    expect((await detail(p, `${id}.backport~2.backport`)).parent).toEqual({
      runId: id,
      step: "backport#2.backport",
    });
  });

  it("undoes the other items' child runs when one fails", async () => {
    const p = new Project();
    p.write("all.yml", ALL);
    p.write("backport-one.yml", ONE);
    // libbar fails once libfoo has built, so libfoo has something to undo.
    p.tool(
      "build",
      `echo "build $1" >> trace
if [ "$1" = libbar ]; then while ! grep -q "built libfoo" trace; do sleep 0.05; done; exit 5; fi
echo "built $1" >> trace; echo "nvr=$1-1.0" >> "$SLIPWAY_OUTPUT"`,
    );
    const result = await p.run(["run", "all.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(p.trace()).toContain("undo libfoo");
    expect(p.trace()).not.toContain("undo libbar");
    expect(p.trace().some((line) => line.startsWith("report"))).toBe(false);
    expect((await detail(p, runId(result.stdout))).status).toBe("compensated");
  });
});
