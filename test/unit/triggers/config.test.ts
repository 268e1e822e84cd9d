/** The server config's `sources:`: read with defaults, secrets only by reference, problems at their place. */
import { describe, expect, it } from "vitest";
import { ConfigError, parseServerConfig } from "../../../src/scheduler/config.js";
import { parseSources } from "../../../src/triggers/config.js";

const machine = { memoryBytes: () => 1, cpu: () => 1, diskBytes: () => 1 };

function problems(text: string): string[] {
  try {
    parseSources(text, "c.yml", "/etc/slipway");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
  throw new Error("expected problems");
}

describe("sources:", () => {
  it("reads each source, paths relative to the config file, and leaves the rest to the scheduler", () => {
    const text = `resources: { cpu: 2 }
sources:
  app:
    url: https://git.example.org/team/app.git
    kind: gitea
    credentials: { env: APP_TOKEN }
    webhook_secret: { file: hook-secret }
    poll: 30s
    allow: [ana]
    pipelines:
      - ci/app.yml
      - path: .slipway/ci.yml
  local:
    url: ../repos/local.git
    pipelines: [{ file: /srv/ci.yml }]
`;
    expect(parseSources(text, "c.yml", "/etc/slipway")).toEqual([
      {
        name: "app",
        url: "https://git.example.org/team/app.git",
        kind: "gitea",
        credentials: { env: "APP_TOKEN" },
        webhookSecret: { file: "/etc/slipway/hook-secret" },
        pollMs: 30_000,
        allow: ["ana"],
        keepFailedMs: 86_400_000,
        pipelines: [{ file: "/etc/slipway/ci/app.yml" }, { path: ".slipway/ci.yml" }],
      },
      {
        name: "local",
        url: "/etc/repos/local.git",
        kind: "git",
        pollMs: 60_000,
        allow: [],
        keepFailedMs: 86_400_000,
        pipelines: [{ file: "/srv/ci.yml" }],
      },
    ]);
    // The scheduler's reader accepts the file with its `sources:` in it.
    expect(parseServerConfig(text, "c.yml", "/tmp", machine).capacity.cpu).toBe(2);
  });

  it("never takes a secret's value in the config text, and says what is wrong where", () => {
    expect(
      problems(`sources:
  app:
    url: https://ana:hunter2@example.org/app.git
    kind: gitlub
    credentials: ghp_abc
    pipelines: [ci.yml]
  b:
    url: x
`),
    ).toEqual([
      "3:10: `url` of source `app` holds a password: give it as `credentials: { env: NAME }` instead",
      "4:11: `kind` of source `app` must be `git`, `github`, `gitea`, `forgejo` or `gitlab`, got `gitlub`",
      "5:18: `credentials` of source `app` must say where the value is, `{ env: NAME }` or `{ file: PATH }`, never the value itself",
      "8:5: source `b` needs `pipelines`: the pipeline files it runs",
    ]);
  });
});
