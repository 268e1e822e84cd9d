/**
 * A child run survives the crash of the process running it and its parent: `kill -9` while the
 * parent and the child both run, then a new process continues both, and the child's result reaches
 * the parent exactly once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SqliteStorage } from "../../../src/index.js";
import { tempDir } from "../../helpers.js";
import { trackChild } from "../../leaks.js";
import { eventually, within } from "../../wait.js";

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, "../../..");

function service(args: string[]): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "fixtures", "children.ts"), ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  trackChild(child, `the service (${args[0]})`);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output, exited: new Promise((done) => child.once("exit", done)) };
}

describe("a child run and its parent, killed together", () => {
  it("continue in a new process; the child's result reaches the parent once", async () => {
    const dir = tempDir();
    const db = join(dir, "slipway.db");
    const side = join(dir, "side.txt");
    const lines = () => (existsSync(side) ? readFileSync(side, "utf8").trim().split("\n") : []);
    const first = service(["start", db, join(dir, "data"), side]);
    // Both bodies hang: the parent (beside its child step) and the child run are running when it dies.
    await eventually(
      () => lines().includes("apply:start") && lines().includes("announce:start"),
      `both bodies running: ${first.output()}`,
    );
    const parent = (JSON.parse(first.output().trim().split("\n")[0]!) as { started: string }).started;
    const storage = new SqliteStorage({ path: db });
    await storage.init();
    try {
      expect((await storage.getRun(parent))?.owner).not.toBeNull();
      expect((await storage.getRun(`${parent}.deploy-db`))?.status).toBe("running");
      first.child.kill("SIGKILL");
      expect(await within(first.exited, "the first process to die")).toBeNull();

      const second = service(["continue", db, join(dir, "data"), side, parent]);
      expect(await within(second.exited, `the second process: ${second.output()}`)).toBe(0);
      const { outcome } = JSON.parse(second.output().trim().split("\n").at(-1)!) as {
        outcome: { status: string; output: Record<string, unknown> };
      };
      expect(outcome).toMatchObject({ status: "completed", output: { schema: 7, url: "https://shop/v7" } });
      // Each body ran again after the crash; the step after the child ran once.
      expect(lines().sort()).toEqual(
        ["announce:continue", "announce:start", "apply:continue", "apply:start", "roll-out:continue"].sort(),
      );
      // One child run, one end signalled, consumed by the step; one receipt in the parent's history.
      expect((await storage.listRuns({ parent })).map((r) => [r.id, r.status])).toEqual([
        [`${parent}.deploy-db`, "completed"],
      ]);
      const signals = (await storage.signalsAfter(0)).filter((s) => s.runId === parent);
      expect(signals.map((s) => [s.name, s.consumedBy])).toEqual([["child:deploy-db", "deploy-db"]]);
      const received = (await storage.history(parent)).filter((e) => e.type === "signal:received");
      expect(received).toHaveLength(1);
      const child = await storage.load(`${parent}.deploy-db`);
      expect(child?.run.parent).toEqual({ runId: parent, step: "deploy-db" });
    } finally {
      await storage.close();
    }
  });
});
