/**
 * Story 3's teardown in a real `slipway serve`: `examples/recipe-ci.yml` cancelled mid-deploy runs the
 * deploy's `cleanup` (the half-made stack is removed) and ends cancelled; a server killed mid-deploy
 * leaves the cleanup to the next one, which runs it before the deploy runs again.
 */

import { cpSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

const examples = fileURLToPath(new URL("../../../examples", import.meta.url));

/** A temporary copy of recipe-ci.yml and its fake tools, with the swarm lock declared. */
function recipeProject(): Project {
  const p = new Project();
  cpSync(join(examples, "recipe-ci.yml"), join(p.dir, "recipe-ci.yml"));
  cpSync(join(examples, "tools"), join(p.dir, "tools"), { recursive: true });
  p.write("slipway.yml", "locks: { swarm: 1 }\n");
  return p;
}

const STACK = join(".state", "recipe", "stacks", "gitea");

/** Submits recipe-ci.yml with a deploy that pulls images for ten minutes: time enough to cut it short. */
async function submitSlowDeploy(server: Server, p: Project): Promise<string> {
  const body = {
    file: { name: join(p.dir, "recipe-ci.yml"), source: p.read("recipe-ci.yml") },
    inputs: { pull_seconds: 600 },
  };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

/** Gate: the deploy has created its stack (its first act) and pulls images now. */
async function deployRunning(p: Project): Promise<void> {
  await eventually(() => existsSync(join(p.dir, STACK, "run")), "the deploy to create its stack");
}

function stacks(p: Project): string[] {
  const dir = join(p.dir, ".state", "recipe", "stacks");
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe("examples/recipe-ci.yml cut short in slipway serve (story 3)", () => {
  it("tears the half-made stack down when the run is cancelled mid-deploy, then ends cancelled", async () => {
    const p = recipeProject();
    const server = await startServer(p, ["--config", "slipway.yml"]);
    const id = await submitSlowDeploy(server, p);
    await deployRunning(p);

    const cancel = await p.run(["cancel", id, "--reason", "operator", ...server.flags]);
    expect(cancel.code, cancel.stderr).toBe(0);
    const run = await server.status(id, "cancelled");
    expect(stacks(p)).toEqual([]);
    expect(run.steps.find((s) => s.job === "deploy")).toMatchObject({ status: "failed", attempt: 1 });

    // The cleanup ran before the run ended, and its output is in the deploy's logs, marked as such.
    const events = await server.events(id);
    const trail = events
      .filter((e) => e.type.startsWith("cleanup:") || e.type === "run:cancelled")
      .map((e) => `${e.type} ${e.action ?? ""}`.trim());
    expect(trail).toEqual(["cleanup:started deploy", "cleanup:completed deploy", "run:cancelled"]);
    const logs = await p.run(["logs", id, "deploy", ...server.flags]);
    expect(logs.stdout).toMatch(/==> deploy \(attempt 1\) <==\n.*created stack gitea/);
    expect(logs.stdout).toMatch(/==> deploy cleanup \(after attempt 1\) <==\n.*removed stack gitea/);
  });

  it("cleans up after a deploy its server died running, before the next server runs it again", async () => {
    const p = recipeProject();
    const server = await startServer(p, ["--config", "slipway.yml"]);
    const id = await submitSlowDeploy(server, p);
    await deployRunning(p);
    server.process.child.kill("SIGKILL");
    await server.process.done;

    // The next server sweeps the dead one's deploy, runs its cleanup (the stack goes), then runs the
    // deploy again (a new stack).
    const again = await startServer(p, ["--config", "slipway.yml"]);
    const logs = await eventually(async () => {
      const out = (await p.run(["logs", id, "deploy", ...again.flags])).stdout;
      return /==> deploy \(attempt 2\) <==\n.*created stack gitea/.test(out) && out;
    }, "the deploy to run again");
    expect(logs).toMatch(/==> deploy cleanup \(after attempt 1\) <==\n.*removed stack gitea/);

    // Cancelled now, the second attempt is cleaned up after too; the history tells it in order.
    await deployRunning(p);
    await p.run(["cancel", id, ...again.flags]);
    await again.status(id, "cancelled");
    expect(stacks(p)).toEqual([]);
    const deploy = (await again.events(id)).filter(
      (e) => e.action === "deploy" && (e.type.startsWith("cleanup:") || e.type === "action:started"),
    );
    // (A cleanup's lock taken in the database, on PostgreSQL, may add its admission `timing`.)
    const has = (data: object) => expect.objectContaining(data);
    expect(deploy.map((e) => [e.type, e.data])).toEqual([
      ["action:started", has({ attempt: 1 })],
      ["cleanup:started", has({ attempt: 1, interrupted: true })],
      ["cleanup:completed", has({ attempt: 1 })],
      ["action:started", has({ attempt: 2, recovered: true })],
      ["cleanup:started", has({ attempt: 2, error: expect.stringMatching(/cancelled|stopped/) })],
      ["cleanup:completed", has({ attempt: 2 })],
    ]);
  });
});
