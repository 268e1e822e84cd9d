/** The server config's own sections (tokens, retention, job_env) beside the scheduler's, in one file with one list of problems. */
import { describe, expect, it } from "vitest";
import { parseServeConfig, tokenHash } from "../../../src/runs/config.js";
import type { Machine } from "../../../src/scheduler/config.js";
import { ConfigError } from "../../../src/scheduler/config.js";

const MACHINE: Machine = { memoryBytes: () => 1024, cpu: () => 2, diskBytes: () => 4096 };
const HASH = tokenHash("s3cret");

function parse(source: string) {
  return parseServeConfig(source, "slipway.yml", "/data", MACHINE);
}

function problems(source: string): string[] {
  try {
    parse(source);
  } catch (error) {
    if (error instanceof ConfigError)
      return error.problems.map(
        (p) => `${p.line}:${p.col} ${p.message}${p.suggestion ? ` (${p.suggestion})` : ""}`,
      );
    throw error;
  }
  throw new Error("expected problems");
}

describe("server config: tokens, retention, job_env", () => {
  it("reads every section beside the scheduler's", () => {
    const config = parse(
      [
        "locks: { swarm: 1 }",
        "tokens:",
        `  ci: { role: operate, hash: "${HASH}" }`,
        `  alice: { role: admin, hash: "${tokenHash("other").toUpperCase().replace("SHA256:", "sha256:")}" }`,
        "retention: { older_than: 30d, every: 10m }",
        "job_env: [AWS_PROFILE, PIP_*]",
      ].join("\n"),
    );
    expect(config.scheduler.capacity.locks).toEqual({ swarm: 1 });
    expect(config.tokens.map((t) => [t.name, t.role, t.sha256.length])).toEqual([
      ["ci", "operate", 32],
      ["alice", "admin", 32],
    ]);
    expect(`sha256:${config.tokens[0]!.sha256.toString("hex")}`).toBe(HASH);
    expect(`sha256:${config.tokens[1]!.sha256.toString("hex")}`).toBe(tokenHash("other"));
    expect(config.retention).toEqual({ olderThanMs: 30 * 86_400_000, everyMs: 600_000 });
    expect(config.jobEnv).toEqual(["AWS_PROFILE", "PIP_*"]);
  });

  it("takes retention as one duration, checked hourly; defaults to none of these", () => {
    expect(parse("retention: 7d").retention).toEqual({ olderThanMs: 7 * 86_400_000, everyMs: 3_600_000 });
    const none = parse("");
    expect(none.tokens).toEqual([]);
    expect(none.retention).toBeUndefined();
    expect(none.jobEnv).toEqual([]);
    expect(none.metrics).toEqual({ public: false });
  });

  it("makes metrics public only when told, and says what it wants otherwise", () => {
    expect(parse("metrics: { public: true }").metrics).toEqual({ public: true });
    expect(parse("metrics: { public: false }").metrics).toEqual({ public: false });
    expect(problems("metrics: { public: yes please, open: true }")).toEqual([
      expect.stringMatching(/^1:20 `metrics.public` must be `true` or `false`/),
      expect.stringMatching(/^1:\d+ unknown key `open` in `metrics`/),
    ]);
  });

  it("reports every problem at its line and column, the scheduler's included", () => {
    expect(
      problems(
        [
          "tokens:",
          "  ci: { role: write, hash: sha256:abc }",
          `  bad name: { role: read, hash: "${HASH}" }`,
          "  nohash: { role: read }",
          `  twin: { role: read, hash: "${HASH}" }`,
          `  again: { role: read, hash: "${HASH}" }`,
          "retention: 30",
          "job_env: [SLIPWAY_TOKEN, SLIP*, 'A B']",
          "locks: { swarm: 0 }",
          "tokenz: {}",
        ].join("\n"),
      ),
    ).toEqual([
      "2:15 `role` of token `ci` must be one of read, operate, admin, got `write`",
      "2:28 `hash` of token `ci` must be `sha256:` and 64 hex digits (`slipway token hash` prints it), got `sha256:abc`",
      "3:3 token name `bad name` is not valid: use letters, digits, `-` and `_`",
      "4:3 token `nohash` needs a `hash` (`slipway token hash` prints it)",
      "6:30 token `again` has the same hash as token `twin`: one token, one name",
      expect.stringMatching(/^7:12 `retention` \(how long ended runs are kept\): /),
      "8:11 `job_env` entry `SLIPWAY_TOKEN` would hand Slipway's own credentials to jobs: declare what a pipeline needs under `secrets:`",
      "8:26 `job_env` entry `SLIP*` would hand Slipway's own credentials to jobs: declare what a pipeline needs under `secrets:`",
      "8:33 `job_env` entry `A B` must be a variable name, or a prefix ending in `*` (`AWS_*`)",
      expect.stringMatching(/^9:17 lock `swarm`/),
      expect.stringMatching(/^10:1 unknown key `tokenz` in the config/),
    ]);
  });
});
