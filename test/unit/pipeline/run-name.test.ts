/**
 * Run name patterns (story 1's `{ticket}-{branch}-{attempt}`): inputs and event fields filled in,
 * `{attempt}` left open for the runs layer to count, literal braces, and a clear refusal for every
 * placeholder that names nothing or has no value.
 */
import { describe, expect, it } from "vitest";
import { PipelineInputError } from "../../../src/pipeline/problems.js";
import { attemptIn, isNamePattern, resolveNamePattern } from "../../../src/pipeline/run-name.js";

const values: Parameters<typeof resolveNamePattern>[1] = {
  inputs: { ticket: "RHEL-1234", branch: "c10s", dry: false, optional: undefined },
  event: {
    kind: "pull_request",
    sha: "1a2b3c",
    branch: "fix",
    pull_request: { number: 7, author: "ana" },
  },
};

function problems(pattern: string, given: Parameters<typeof resolveNamePattern>[1] = values): string[] {
  try {
    resolveNamePattern(pattern, given);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(PipelineInputError);
    return [...(error as PipelineInputError).problems];
  }
}

describe("run name patterns", () => {
  it("fill in inputs and event fields, and leave {attempt} open", () => {
    expect(isNamePattern("release-main-1")).toBe(false);
    expect(isNamePattern("{ticket}")).toBe(true);
    expect(resolveNamePattern("{ticket}-{branch}-{sha}", values)).toBe("RHEL-1234-c10s-1a2b3c");
    // An input wins over an event field of the same name; either can be named.
    expect(resolveNamePattern("{inputs.branch}/{event.branch}/{dry}", values)).toBe("c10s/fix/false");
    expect(resolveNamePattern("pr-{pull_request.number}-{event.pull_request.author}", values)).toBe(
      "pr-7-ana",
    );
    expect(resolveNamePattern("{{literal}}-{ticket}", values)).toBe("{literal}-RHEL-1234");
    expect(resolveNamePattern("{ticket}-{branch}-{attempt}", values)).toEqual({
      before: "RHEL-1234-c10s-",
      after: "",
    });
    expect(resolveNamePattern("try{attempt}-of-{ticket}", values)).toEqual({
      before: "try",
      after: "-of-RHEL-1234",
    });
  });

  it("read an attempt back from earlier names", () => {
    const pattern = { before: "RHEL-1234-c10s-", after: "" };
    expect(attemptIn("RHEL-1234-c10s-3", pattern)).toBe(3);
    expect(attemptIn("RHEL-1234-c10s-03", pattern)).toBeUndefined();
    expect(attemptIn("RHEL-1234-c10s-x", pattern)).toBeUndefined();
    expect(attemptIn("RHEL-1234-c10s-2-b", pattern)).toBeUndefined();
    expect(attemptIn("RHEL-9-c10s-2", pattern)).toBeUndefined();
  });

  it("refuse a placeholder that names nothing, or has no value, saying what exists", () => {
    expect(problems("{tikcet}-{attempt}")).toEqual([
      "unknown placeholder `{tikcet}` in the run name: it is no input of the pipeline and no event field (did you mean `{ticket}`?); placeholders are `{attempt}`, inputs (`ticket`, `branch`, `dry` and `optional`) and event fields (`{sha}`, `{branch}`, `{pull_request.number}`...)",
    ]);
    expect(problems("{inputs.tiket}")[0]).toMatch(
      /^unknown placeholder `\{inputs.tiket\}` in the run name: the pipeline has no input tiket \(did you mean `\{ticket\}`\?\)/,
    );
    expect(problems("{pull_request.numbr}")[0]).toMatch(/did you mean `\{pull_request.number\}`/);
    expect(problems("{optional}")).toEqual([
      "`{optional}` in the run name: input optional has no value for this run",
    ]);
    expect(problems("{tag}", { ...values, event: { kind: "manual" } })).toEqual([
      "`{tag}` in the run name: this run's event (manual) has no tag",
    ]);
    expect(problems("{attempt}-{attempt}")).toEqual(["the run name has `{attempt}` twice: it counts once"]);
    expect(problems("a{b c}")).toEqual([
      "`{` at character 2 of the run name starts no placeholder such as `{ticket}`: write `{{` for a brace",
    ]);
    expect(problems("a}")).toEqual([
      "a `}` without `{` at character 2 of the run name: write `}}` for a brace",
    ]);
  });
});
