/** Invalid pipeline files and requests: every problem reported at once, as `file:line:col: message`, exit 2. */
import { describe, expect, it } from "vitest";
import { Project } from "./harness.js";

const BAD = `name: bad
jobs:
  build:
    run: echo build >> trace
    timout: 5m
  deploy:
    needs: [build, tset]
    run: echo deploy >> trace
    timeout: 5 parsecs
`;

/** The problems in BAD, each pointing at the offending text. */
const PROBLEMS = [
  /^bad\.yml:5:5: .*unknown key `timout`.*did you mean `timeout`/m,
  /^bad\.yml:7:20: .*`tset`.*not a job/m,
  /^bad\.yml:9:14: .*bad duration `5 parsecs`/m,
];

describe("validation", () => {
  it("slipway validate lists every problem with line and column and exits 2", async () => {
    const project = new Project();
    project.write("bad.yml", BAD);
    const result = await project.run(["validate", "bad.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    for (const problem of PROBLEMS) expect(result.stderr).toMatch(problem);
    expect(result.stderr.trim().split("\n")).toHaveLength(PROBLEMS.length);
  });

  it("slipway validate accepts a good file", async () => {
    const project = new Project();
    project.write("good.yml", "jobs:\n  a:\n    run: echo a\n  b:\n    needs: [a]\n    run: echo b\n");
    const result = await project.run(["validate", "good.yml"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("good.yml: ok (2 jobs)\n");
  });

  it("slipway run refuses a bad file with the same problems, exits 2 and runs nothing", async () => {
    const project = new Project();
    project.write("bad.yml", BAD);
    const result = await project.run(["run", "bad.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    for (const problem of PROBLEMS) expect(result.stderr).toMatch(problem);
    expect(result.stdout).not.toMatch(/^run /m);
    expect(project.trace()).toEqual([]);
    const runs = await project.run(["ls", "--json"]);
    expect(JSON.parse(runs.stdout)).toEqual([]);
  });

  it("slipway run refuses unknown inputs and tiers, and a missing file, with exit 2", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `inputs:
  multiarch: { default: false }
jobs:
  build:
    run: echo build >> trace
  heavy:
    tier: extra
    run: echo heavy >> trace
`,
    );
    const input = await project.run(["run", "pipe.yml", "--input", "multiarc=true"]);
    expect(input.code, input.stderr).toBe(2);
    expect(input.stderr).toMatch(/multiarc/);
    expect(input.stderr).toMatch(/multiarch/);
    const tier = await project.run(["run", "pipe.yml", "--tier", "extar"]);
    expect(tier.code, tier.stderr).toBe(2);
    expect(tier.stderr).toMatch(/no job is in tier "extar".*did you mean "extra"/);
    const missing = await project.run(["run", "nope.yml"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read nope\.yml: ENOENT/);
    expect(project.trace()).toEqual([]);
  });
});
