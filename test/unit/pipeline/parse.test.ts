/** Pipeline files: the example parses to the model; every kind of mistake is reported at its line and column. */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validate } from "../../../src/cli/commands/validate.js";
import { NotFoundError } from "../../../src/errors.js";
import type { Job, RunJob } from "../../../src/pipeline/model.js";
import { loadPipeline, parsePipeline } from "../../../src/pipeline/parse.js";
import { PipelineError } from "../../../src/pipeline/problems.js";
import { formatProblem } from "../../../src/problems.js";
import { tempDir } from "../../helpers.js";

const EXAMPLE = join(import.meta.dirname, "fixtures", "release.yml");

/** The problems of a file, formatted as `validate` prints them, without the file name. */
function problems(source: string): string[] {
  try {
    parsePipeline(source, "p.yml");
  } catch (error) {
    expect(error).toBeInstanceOf(PipelineError);
    return (error as PipelineError).problems.map((p) => formatProblem(p).replace(/^p\.yml:/, ""));
  }
  throw new Error("expected the pipeline to be rejected");
}

/** The only problem of a file. */
function problem(source: string): string {
  const found = problems(source);
  expect(found).toHaveLength(1);
  return found[0]!;
}

function job(jobs: Job[], name: string): Job {
  const found = jobs.find((j) => j.name === name);
  if (!found) throw new Error(`no job ${name}`);
  return found;
}

describe("parsePipeline: the example", () => {
  const pipeline = loadPipeline(EXAMPLE);

  it("reads the pipeline's settings", () => {
    expect(pipeline.file).toBe(EXAMPLE);
    expect(pipeline.name).toBe("release");
    expect(pipeline.onFailure).toBe("undo");
    expect(pipeline.inputs.tag).toMatchObject({ type: "string", default: "dev", required: false });
    expect(pipeline.inputs.tag!.pos).toMatchObject({ line: 3, col: 3 });
    expect(pipeline.inputs.multiarch).toMatchObject({ type: "boolean", default: false, required: false });
    expect(pipeline.env.REGISTRY!.source).toBe("localhost:5000");
    expect(pipeline.secrets.REGISTRY_TOKEN).toMatchObject({
      source: { kind: "env", name: "REGISTRY_TOKEN" },
    });
    expect(pipeline.jobs.map((j) => j.name)).toEqual([
      "build-worker",
      "smoke",
      "build-app",
      "deploy",
      "approve",
      "external-build",
      "heavy-tests",
    ]);
  });

  it("reads run jobs: needs, retries, timeouts, matrix, undo", () => {
    const build = job(pipeline.jobs, "build-worker") as RunJob;
    expect(build).toMatchObject({ kind: "run", retries: 1, timeoutMs: 15 * 60_000, needs: [] });
    expect(build.pos).toMatchObject({ line: 10, col: 3 });
    expect(build.run.parts[1]).toMatchObject({ kind: "expr", pos: { line: 11, col: 31 } });
    expect(job(pipeline.jobs, "smoke")).toMatchObject({ needs: ["build-worker"], retries: 0 });

    const app = job(pipeline.jobs, "build-app") as RunJob;
    expect(app.needs).toEqual(["build-worker", "smoke"]);
    expect(app.matrix!.axes).toEqual({ platform: ["linux/amd64"] });
    expect(app.matrix!.exclude).toEqual([]);
    expect(app.matrix!.include).toHaveLength(1);
    expect(app.matrix!.include[0]!.values).toEqual({ platform: "linux/arm64" });
    expect(app.matrix!.include[0]!.if!.source).toBe("${{ inputs.multiarch }}");
    expect(app.undo!.source).toBe("./unpush.sh ${{ outputs.digest }}");
  });

  it("reads deploy: condition, env, directory, multi-line command, resources, readiness", () => {
    const deploy = job(pipeline.jobs, "deploy") as RunJob;
    expect(deploy.if!.source).toBe("${{ inputs.tag != 'skip' }}");
    expect(deploy.env.TARGET!.source).toBe("prod");
    expect(deploy.workingDirectory!.source).toBe("deploy");
    expect(deploy.run.source).toBe("./deploy.sh ${{ needs.build-app.outputs.digest }}\necho done\n");
    // Positions inside a block scalar point into the file, not into the unindented string.
    expect(deploy.run.parts[1]).toMatchObject({ kind: "expr", pos: { line: 32, col: 22 } });
    expect(deploy.undo!.source).toBe("./teardown.sh");
    expect(deploy.resources).toEqual({
      memoryBytes: 4 * 2 ** 30,
      cpu: 2,
      diskBytes: 10 * 2 ** 30,
      locks: ["swarm"],
    });
    expect(deploy.ready).toMatchObject({
      everyMs: 2_000,
      timeoutMs: 20 * 60_000,
      crashLoop: { failures: 3, withinMs: 60_000 },
    });
    expect(deploy.ready!.run.source).toBe("./probe.sh");
  });

  it("reads waits, polls and tiers", () => {
    expect(job(pipeline.jobs, "approve")).toMatchObject({
      kind: "wait",
      signal: "approved",
      timeoutMs: 24 * 3_600_000,
      needs: ["deploy"],
    });
    const poll = job(pipeline.jobs, "external-build");
    expect(poll).toMatchObject({ kind: "poll", everyMs: 30_000, timeoutMs: 6 * 3_600_000, retries: 0 });
    expect(poll.kind === "poll" && poll.run.source).toBe("./check-build.sh");
    expect(job(pipeline.jobs, "heavy-tests").tier).toBe("extra");
  });
});

describe("parsePipeline: defaults and shorthands", () => {
  it("takes the name from the file, a single `needs`, a bare input, sizes in bytes, default probe timings", () => {
    const pipeline = parsePipeline(
      `inputs:
  tag:
  retries: { default: 3 }
jobs:
  a:
    run: make
    resources: { memory: auto, disk: 1024, locks: swarm }
    ready: { run: ./probe }
  b: { needs: a, run: "echo \${{ inputs.tag }}" }
  c:
    poll: { run: ./check }
`,
      "deploy/my release.yaml",
    );
    expect(pipeline.name).toBe("my-release");
    expect(pipeline.inputs.tag).toMatchObject({ type: "string", required: true });
    expect(pipeline.inputs.retries).toMatchObject({ type: "number", default: 3, required: false });
    const a = job(pipeline.jobs, "a") as RunJob;
    expect(a.resources).toEqual({ memoryBytes: "auto", diskBytes: 1024, locks: ["swarm"] });
    expect(a.ready).toMatchObject({ everyMs: 2_000, timeoutMs: 5 * 60_000 });
    expect(a.ready!.crashLoop).toBeUndefined();
    expect(job(pipeline.jobs, "b").needs).toEqual(["a"]);
    expect(job(pipeline.jobs, "c")).toMatchObject({ kind: "poll", everyMs: 30_000 });
    expect(pipeline.onFailure).toBe("undo");
  });

  it("keeps numbers in env as written, and reads on_failure: hold and file secrets", () => {
    const pipeline = parsePipeline(
      "on_failure: hold\nenv: { NODE: 20.10, DEBUG: true }\nsecrets: { TOKEN: { file: ./token.txt } }\njobs: { a: { run: make } }\n",
      "p.yml",
    );
    expect(pipeline.env.NODE!.source).toBe("20.10");
    expect(pipeline.env.DEBUG!.source).toBe("true");
    expect(pipeline.onFailure).toBe("hold");
    expect(pipeline.secrets.TOKEN!.source).toEqual({ kind: "file", path: "./token.txt" });
  });
});

describe("parsePipeline: problems", () => {
  it("reports unknown keys with the closest valid one", () => {
    expect(
      problems(`jobs:
  a:
    need: [b]
    working-directory: src
    run: make
  b: { run: make, timeout-minutes: 5 }
`),
    ).toEqual([
      "3:5: unknown key `need` in job `a` (did you mean `needs`?)",
      "4:5: unknown key `working-directory` in job `a` (did you mean `working_directory`?)",
      "6:19: unknown key `timeout-minutes` in job `b`: write the limit as a duration, e.g. `timeout: 15m` (did you mean `timeout`?)",
    ]);
    expect(problems("job: {}\n")).toEqual([
      "1:1: unknown key `job` in the pipeline (did you mean `jobs`?)",
      "1:1: the pipeline has no `jobs`: add at least one, e.g. `jobs: { build: { run: make } }`",
    ]);
    expect(problem("jobs: { a: { run: x, ready: { run: y, evry: 2s } } }\n")).toBe(
      "1:39: unknown key `evry` in `ready` of job `a` (did you mean `every`?)",
    );
  });

  it("reports wrong types", () => {
    expect(
      problems(`jobs:
  a:
    run: [make]
    retries: two
    env: [A]
  b: make
`),
    ).toEqual([
      "3:10: `run` of job `a` must be a string, got a list",
      "4:14: `retries` of job `a` must be a whole number 0 or more, got the string `two`",
      "5:10: `env` of job `a` must be a map (`key: value` lines), got a list",
      "6:6: job `b` must be a map of its settings, got the string `make`",
    ]);
  });

  it("reports unknown, self and duplicate needs, and cycles with their path", () => {
    expect(
      problems(`jobs:
  build: { run: make }
  test:
    needs: [biuld, test, build, build]
    run: make test
`),
    ).toEqual([
      "4:13: job `test` needs `biuld`, which is not a job (did you mean `build`?)",
      "4:20: job `test` needs itself",
      "4:33: job `test` lists `build` twice in `needs`",
    ]);
    expect(
      problems(`jobs:
  a: { needs: [c], run: x }
  b: { needs: a, run: x }
  c: { needs: [b], run: x }
`),
    ).toEqual(["3:15: dependency cycle: a -> c -> b -> a"]);
  });

  it("reports bad durations and sizes with what to write", () => {
    expect(
      problems(`jobs:
  a:
    run: x
    timeout: 30
    resources: { memory: 4G, disk: -1 }
    ready: { run: y, every: 2 seconds, timeout: 0s }
`),
    ).toEqual([
      "4:14: `timeout` of job `a`: bad duration `30`: a number needs a unit (ms, s, m, h, d), e.g. `30s` or `30m`",
      "5:26: `resources.memory` of job `a`: bad size `4G`: use a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `4GiB`",
      "5:36: `resources.disk` of job `a`: bad size `-1`: a plain number is a count of bytes and must be a whole number 0 or more, e.g. `1024` or `512MiB`",
      "6:29: `ready.every` of job `a`: bad duration `2 seconds`: use a number and a unit (ms, s, m, h, d), e.g. `2s`",
      "6:49: `ready.timeout` of job `a` must be longer than 0, e.g. `30s`",
    ]);
  });

  it("reports expression syntax errors at the character", () => {
    expect(problem("jobs:\n  a:\n    run: echo ${{ inputs.tag = 'x' }}\n")).toBe(
      "3:30: `run` of job `a`: use `==` to compare (a single `=` assigns nothing here)",
    );
    expect(problem("jobs:\n  a:\n    run: echo ${{ inputs.tag\n")).toBe(
      "3:15: `run` of job `a`: `${{` is never closed: end the expression with `}}`",
    );
  });

  it("reports what an expression may not read where it is written", () => {
    expect(
      problems(`inputs: { tag: {} }
env: { A: "\${{ needs.a.outputs.x }}" }
jobs:
  a:
    run: echo \${{ inputs.tg }} \${{ matrix.os }} \${{ outputs.digest }}
  b:
    if: \${{ env.A }}
    run: echo \${{ needs.a.outputs.digest }}
  c:
    needs: [b]
    run: echo \${{ secrets.TOKEN }}
    undo: echo \${{ outputs.digest }} \${{ needs.b.outputs }}
`),
    ).toEqual([
      "2:16: `env.A` of the pipeline: the pipeline's `env` can read only `inputs`",
      "5:26: `run` of job `a`: unknown input `tg` (declared inputs: `tag`) (did you mean `tag`?)",
      "5:36: `run` of job `a`: job `a` has no `matrix`, so `matrix` can't be read",
      "5:53: `run` of job `a`: `outputs` (the job's own outputs) can be read only in `undo` and `ready.run`; other jobs read them as `needs.<job>.outputs.<name>`",
      "7:13: `if` of job `b`: `env` can't be read in a job's `if:` (it is set for the command, after `if:` is decided)",
      "8:25: `run` of job `b`: job `b` can only read outputs of the jobs it needs: add `a` to its `needs`",
      "11:19: `run` of job `c`: expressions can't read secrets (they would show in command lines and logs): each secret is in the step's environment under its name, e.g. `$TOKEN`",
      "12:50: `undo` of job `c`: write `needs.b.outputs.<name>`: a job's outputs are all `needs` exposes",
    ]);
  });

  it("reports matrix legs naming unknown axes or values, and include conditions reading more than inputs", () => {
    expect(
      problems(`jobs:
  a:
    matrix:
      os: [linux, mac]
      arch: [amd64]
      include:
        - { os: win, arch: arm64, if: "\${{ needs.b.outputs.x }}" }
        - { os: win }
        - { os: win, arch: arm64, platform: x }
      exclude:
        - { oss: linux }
        - { os: bsd }
    run: echo \${{ matrix.os }} \${{ matrix.platform }}
`),
    ).toEqual([
      "7:44: `if` of an `include` leg: an `include` leg's `if:` can read only `inputs` (it decides which legs exist before anything runs)",
      "8:11: an `include` leg names every axis: add `arch`",
      "9:35: `include` names `platform`, which is not an axis of the matrix (axes: `os` and `arch`)",
      "11:13: `exclude` names `oss`, which is not an axis of the matrix (axes: `os` and `arch`) (did you mean `os`?)",
      "12:17: `exclude` names `os: bsd`, which axis `os` does not have (values: `linux` and `mac`)",
      "13:43: `run` of job `a`: unknown matrix axis `platform` (axes: `os` and `arch`)",
    ]);
  });

  it("reports settings that apply to run jobs only", () => {
    expect(
      problems(`jobs:
  approve:
    wait: { signal: approved }
    undo: ./revoke.sh
    timeout: 1h
  build:
    poll: { run: ./check }
    ready: { run: ./probe }
    retries: 2
    resources: { memory: 1GiB }
    cleanup: ./tidy
`),
    ).toEqual([
      "4:5: `undo` applies to `run` jobs only (job `approve` waits for a signal)",
      "5:5: `timeout` applies to `run` jobs only (job `approve` waits for a signal): put it in `wait:`",
      "8:5: `ready` applies to `run` jobs only (job `build` polls)",
      "9:5: `retries` applies to `run` jobs only (job `build` polls): put it in `poll:`",
      "10:5: `resources` applies to `run` jobs only (job `build` polls): it holds nothing while it waits, and is admitted for nothing",
      "11:5: `cleanup` applies to `run` jobs only (job `build` polls)",
    ]);
  });

  it("reads a run job's cleanup, which cannot read the job's own outputs", () => {
    const source = `jobs:
  deploy:
    run: ./deploy
    cleanup: ./teardown \${{ inputs.recipe }}
`;
    const deploy = parsePipeline(`inputs: { recipe: { default: gitea } }\n${source}`, "p.yml").jobs[0];
    expect(deploy).toMatchObject({ kind: "run", cleanup: { source: "./teardown ${{ inputs.recipe }}" } });
    expect(
      problems(`jobs:
  deploy:
    run: ./deploy
    cleanup: ./teardown \${{ outputs.stack }}
    teardown: ./teardown
`),
    ).toEqual([
      "4:29: `cleanup` of job `deploy`: `outputs` (the job's own outputs) can be read only in `undo` and `ready.run`; other jobs read them as `needs.<job>.outputs.<name>`",
      "5:5: unknown key `teardown` in job `deploy`: a teardown after a `run` cut short is `cleanup`; after a completed one, `undo` (did you mean `cleanup`?)",
    ]);
  });

  it("reports bad names: jobs, tiers, locks", () => {
    expect(
      problems(`jobs:
  build.app: { run: x }
  b: { run: x, tier: "heavy tests", resources: { locks: [swarm, swarm] } }
`),
    ).toEqual([
      "2:3: job name `build.app` is not valid: use letters, digits, `-` and `_` (`.` is kept for matrix legs)",
      "3:22: `tier` of job `b` must be a name made of letters, digits, `-` and `_`, got `heavy tests`",
      "3:65: lock `swarm` is listed twice",
    ]);
  });

  it("requires exactly one of run, wait, poll and uses", () => {
    expect(
      problems(`jobs:
  a: { needs: [b] }
  b:
    run: make
    wait: { signal: go }
`),
    ).toEqual([
      "2:3: job `a` needs one of `run`, `wait`, `poll` or `uses`: what it does",
      "5:5: job `b` has both `run` and `wait`: a job does one thing (split it in two, the second needing the first)",
    ]);
  });

  it("reports empty or missing jobs", () => {
    expect(problem("name: x\njobs:\n")).toBe("2:1: `jobs` is empty: a pipeline needs at least one job");
    expect(problem("name: x\njobs: {}\n")).toBe("2:1: `jobs` is empty: a pipeline needs at least one job");
    expect(problem("name: x\n")).toMatch(/^1:1: the pipeline has no `jobs`/);
    expect(problem("")).toBe("1:1: the file is empty: a pipeline needs at least `jobs`");
  });

  it("reports inputs and secrets that can't work", () => {
    expect(
      problems(`inputs:
  env: { type: choice, options: [dev, prod], default: staging }
  debug: { type: bool }
  verbose: { required: false }
  count: { type: string, default: 3 }
secrets:
  TOKEN: { env: TOKEN, file: ./t }
  KEY: { env: KEY }
env: { KEY: x }
jobs: { a: { run: make } }
`),
    ).toEqual([
      "2:55: `default` of input `env` is `staging`, which is not one of the options (`dev` or `prod`)",
      "3:18: `type` of input `debug` must be `string`, `boolean`, `number` or `choice`, got `bool` (did you mean `boolean`?)",
      "4:24: input `verbose` is optional but has no `default`: give it one (e.g. `default: ''`) so there is a value to read",
      "5:35: `default` of input `count` must be a string, got `3`: quote it (`'3'`) to make it a string",
      "7:24: secret `TOKEN` needs exactly one source: `env: VARIABLE` or `file: ./path`",
      "9:8: `KEY` in `env` of the pipeline is also a secret, which every step already has under that name: rename one",
    ]);
  });

  it("reports YAML syntax errors at their line, and only those", () => {
    const found = problems("jobs:\n  a:\n    run: [make\n  b: { run: x }\n  c: { need: x }\n");
    expect(found.length).toBeGreaterThan(0);
    expect(found[0]).toMatch(/^[34]:\d+: YAML: /);
    expect(found.every((p) => p.includes("YAML: "))).toBe(true);
  });

  it("reports duplicate keys and still checks the rest", () => {
    expect(problems("jobs:\n  a:\n    run: x\n    run: y\n    needs: [b]\n")).toEqual([
      "4:5: YAML: Map keys must be unique",
      "5:13: job `a` needs `b`, which is not a job",
    ]);
  });

  it("reports every problem at once, in file order", () => {
    const error = (() => {
      try {
        parsePipeline("jobs:\n  b: { needs: [x], run: y, timeout: 5 }\n  a: { wait: {} }\n", "p.yml");
      } catch (e) {
        return e as PipelineError;
      }
      throw new Error("expected problems");
    })();
    expect(error.problems.map((p) => `${p.line}:${p.col}`)).toEqual(["2:16", "2:37", "3:8"]);
    expect(error.message).toMatch(/^p\.yml has 3 problems:\np\.yml:2:16: job `b` needs `x`/);
  });

  it("points into quoted and folded strings", () => {
    expect(
      problems(`jobs:
  a: { run: "say \\"hi\\" \${{ inputs.x }}" }
  b: { run: 'it''s \${{ inputs.x }}' }
  c:
    run: >
      one
      two \${{ inputs.x }}
`),
    ).toEqual([
      "2:36: `run` of job `a`: unknown input `x` (no inputs are declared)",
      "3:31: `run` of job `b`: unknown input `x` (no inputs are declared)",
      "7:22: `run` of job `c`: unknown input `x` (no inputs are declared)",
    ]);
  });
});

describe("loadPipeline and slipway validate", () => {
  it("says clearly that a file is missing", () => {
    expect(() => loadPipeline("/nonexistent/pipeline.yml")).toThrow(NotFoundError);
    expect(() => loadPipeline("/nonexistent/pipeline.yml")).toThrow(/pipeline\.yml does not exist/);
  });

  it("validate prints ok with the job count, or each problem and exits 2", async () => {
    let out = "";
    let err = "";
    const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
    expect(await validate.run([EXAMPLE], io)).toBe(0);
    expect(out).toBe(`${EXAMPLE}: ok (7 jobs)\n`);

    const bad = join(tempDir(), "bad.yml");
    writeFileSync(
      bad,
      readFileSync(EXAMPLE, "utf8").replace("needs: [build-worker]", "need: [build-worker]"),
    );
    out = "";
    expect(await validate.run([bad], io)).toBe(2);
    expect(out).toBe("");
    expect(err).toBe(`${bad}:15:5: unknown key \`need\` in job \`smoke\` (did you mean \`needs\`?)\n`);

    err = "";
    expect(await validate.run([join(tempDir(), "missing.yml")], io)).toBe(2);
    expect(err).toMatch(/missing\.yml does not exist/);
  });
});
