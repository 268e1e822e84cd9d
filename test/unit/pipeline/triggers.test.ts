/** A pipeline's `on:` and `run-name:`: parsed to the model, mistakes reported at their line and column. */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { describe, expect, it } from "vitest";
import { parsePipeline } from "../../../src/pipeline/parse.js";
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

const JOBS = "jobs:\n  test: { run: make test }\n  heavy: { run: make heavy, tier: heavy }\n";

describe("on:", () => {
  it("reads push, pull_request, comment, schedule and manual in GitHub's shape", () => {
    const pipeline = parsePipeline(
      `run-name: \${{ inputs.ticket }}-\${{ event.branch }}
inputs:
  ticket: { default: none }
on:
  push:
    branches: [main, "release/**"]
    tags: v*
    commits: each
  pull_request:
    types: [opened, synchronize]
    branches: main
  comment:
    command: "!testme"
    flags:
      --extra: { tier: heavy }
      --quick: { inputs: { ticket: q } }
  schedule:
    - cron: "0 3 * * 1-5"
      time_zone: Europe/Berlin
  manual:
${JOBS}`,
      "p.yml",
    );
    const on = pipeline.on!;
    expect(on.push).toMatchObject({ branches: ["main", "release/**"], tags: ["v*"], commits: "each" });
    expect(on.pullRequest).toMatchObject({ types: ["opened", "synchronize"], branches: ["main"] });
    expect(on.comment).toMatchObject({
      command: "!testme",
      flags: {
        "--extra": { tiers: ["heavy"], inputs: {} },
        "--quick": { tiers: [], inputs: { ticket: "q" } },
      },
    });
    expect(on.schedule).toMatchObject([{ cron: "0 3 * * 1-5", timeZone: "Europe/Berlin" }]);
    expect(on.manual).toBe(true);
    expect(pipeline.runName?.source).toBe("${{ inputs.ticket }}-${{ event.branch }}");
  });

  it("takes `on: push` and `on: [push, manual]` with their defaults", () => {
    expect(parsePipeline(`on: push\n${JOBS}`, "p.yml").on).toMatchObject({
      push: { commits: "latest" },
      manual: false,
    });
    expect(parsePipeline(`on: [pull_request, manual]\n${JOBS}`, "p.yml").on).toMatchObject({
      pullRequest: { types: ["opened", "synchronize", "reopened"] },
      manual: true,
    });
  });

  it("reports mistakes at their place, with what to write", () => {
    expect(problems(`on:\n  workflow_dispatch:\n${JOBS}`)).toEqual([
      "2:3: unknown key `workflow_dispatch` in `on`: runs by hand are `manual` (did you mean `manual`?)",
    ]);
    expect(problems(`on:\n  push: { commits: all }\n${JOBS}`)[0]).toMatch(
      /^2:20: `on.push.commits` must be `latest` or `each`/,
    );
    expect(problems(`on:\n  schedule:\n    - cron: "61 * * * *"\n${JOBS}`)[0]).toMatch(
      /^3:13: `cron`: cron minute: `61` is not between 0 and 59/,
    );
    expect(
      problems(`on:\n  schedule:\n    - { cron: "0 3 * * *", time_zone: Mars/Base }\n${JOBS}`)[0],
    ).toMatch(/^3:39: `time_zone` `Mars\/Base` is not a time zone/);
    expect(problems(`on:\n  comment: { command: "!t", flags: { --x: { tier: hevy } } }\n${JOBS}`)[0]).toMatch(
      /asks for tier `hevy`, which no job has .*did you mean `heavy`/,
    );
    expect(problems(`on:\n  pull_request: { types: [closed] }\n${JOBS}`)[0]).toMatch(
      /^2:27: pull request type `closed` is not one that starts runs/,
    );
  });

  it("checks `event` references and keeps `run-name` to inputs and event", () => {
    expect(problems(`on: push\njobs:\n  a: { run: "echo \${{ event.shaa }}" }\n`)[0]).toMatch(
      /unknown event field `shaa`.*did you mean `sha`/,
    );
    expect(problems(`on: push\njobs:\n  a: { run: "echo \${{ event.pull_request.numbr }}" }\n`)[0]).toMatch(
      /unknown field `numbr` of `event.pull_request`/,
    );
    expect(problems(`run-name: \${{ needs.a.outputs.x }}\n${JOBS}`)[0]).toMatch(
      /`run-name` can read only `inputs` and `event`/,
    );
    expect(() =>
      parsePipeline(
        `jobs:\n  a: { run: "echo \${{ event.comment.author }}", if: "event.kind == 'push'" }\n`,
        "p.yml",
      ),
    ).not.toThrow();
  });
});
