/**
 * An executor charges errors thrown outside an action's promise to that action, and leaves the
 * embedding application's own uncaught errors to fail as they would without Slipway.
 */
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../helpers.js";
import { trackChild } from "../../leaks.js";
import { within } from "../../wait.js";

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, "../../..");

function app(mode: "crash" | "listener"): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(here, "fixtures", "app.ts"), mode, tempDir()],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  trackChild(child, `the embedding application (${mode})`);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((done) => child.once("close", (code) => done({ code, stdout, stderr })));
}

describe("an application embedding an executor", () => {
  it("fails for its own uncaught error as Node does (printed, exit 1), after its action's was charged to the action", async () => {
    const result = await within(app("crash"), "the application");
    expect(result.stdout).toContain("run compensated: the action's bug");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Error: the application's own bug");
    expect(result.stderr).not.toContain("the action's bug");
  });

  it("hands its own uncaught error to its own listener", async () => {
    const result = await within(app("listener"), "the application");
    expect(result.stdout).toContain("run compensated: the action's bug");
    expect(result.stdout).toContain("the application's listener: the application's own bug");
    expect(result.code).toBe(0);
  });
});
