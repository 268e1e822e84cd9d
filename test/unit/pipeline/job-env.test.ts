/** What jobs inherit of the environment: all but Slipway's credentials locally, an allow-list on a server. */
import { describe, expect, it } from "vitest";
import { inheritAllButCredentials, inheritOnly, SERVER_JOB_ENV } from "../../../src/pipeline/job-env.js";

describe("job environment", () => {
  it("a foreground run's jobs get everything but Slipway's credentials", () => {
    for (const name of ["PATH", "AWS_PROFILE", "SLIPWAY_DB", "SLIPWAY_SERVER", "MY_TOKEN"])
      expect(inheritAllButCredentials(name), name).toBe(true);
    for (const name of [
      "SLIPWAY_TOKEN",
      "SLIPWAY_TOKEN_FILE",
      "SLIPWAY_DEPLOY_SECRET",
      "SLIPWAY_DB_PASSWORD",
    ])
      expect(inheritAllButCredentials(name), name).toBe(false);
  });

  it("a server's jobs get the allow-list and what job_env adds, never a credential", () => {
    const inherit = inheritOnly([...SERVER_JOB_ENV, "AWS_PROFILE", "PIP_*", "SLIPWAY_*"]);
    for (const name of [
      "PATH",
      "HOME",
      "LANG",
      "LC_ALL",
      "LC_CTYPE",
      "TZ",
      "TMPDIR",
      "AWS_PROFILE",
      "PIP_INDEX_URL",
    ])
      expect(inherit(name), name).toBe(true);
    for (const name of ["AWS_SECRET_ACCESS_KEY", "HTTP_PROXY", "SERVER_ONLY", "SLIPWAY_TOKEN", "PATHX", "LC"])
      expect(inherit(name), name).toBe(false);
    expect(inherit("SLIPWAY_DB"), "a pattern may pass other SLIPWAY_ variables").toBe(true);
  });
});
