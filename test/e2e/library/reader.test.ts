/**
 * A read-only reader in another process than the executor that runs the saga: lists the run, follows
 * its events live, reads its steps and timestamps, waits for its result; writes nothing, creates
 * nothing, and blocks no writer.
 */
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { RunReader } from "../../../src/engine/reader.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import { tempDir } from "../../helpers.js";
import { trackChild } from "../../leaks.js";
import { eventually, within } from "../../wait.js";

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, "../../..");

describe("RunReader", () => {
  it("follows a run that another process executes, without writing", async () => {
    const dir = tempDir();
    const db = join(dir, "slipway.db");
    const gate = join(dir, "approved");
    const writer = spawn(
      process.execPath,
      ["--import", "tsx", join(here, "fixtures", "writer.ts"), db, gate],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    trackChild(writer, "the writer");
    const exited = new Promise<number | null>((done) => writer.once("close", done));
    let out = "";
    writer.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await eventually(() => out.includes("\n"), "the writer's run id");
    const runId = out.trim();

    const reader = await RunReader.open(db, { pollIntervalMs: 20 });
    try {
      const listed = await reader.list({ sagas: ["build"] });
      expect(listed.map((r) => [r.id, r.runName])).toEqual([[runId, "libfoo-1"]]);
      // Waiting on the poll: the reader sees it as it is, step by step.
      await eventually(
        async () =>
          (await reader.get(runId))?.steps.find((s) => s.action === "approval")?.status === "waiting",
        "the approval poll waiting",
      );
      const seen: string[] = [];
      const following = (async () => {
        for await (const event of reader.watch(runId))
          if (!event.type.endsWith("progress")) seen.push(`${event.type} ${event.action ?? ""}`.trim());
      })();
      writeFileSync(gate, "");
      const outcome = await within(reader.result(runId), "the result, read from the other process");
      expect(outcome).toMatchObject({
        status: "completed",
        output: { pkg: "libfoo", publish: "libfoo.tar by ana" },
      });
      await within(following, "the watch to end with the run");
      expect(seen[0]).toBe("run:started");
      expect(seen).toContain("action:completed publish");
      expect(seen.at(-1)).toBe("run:completed");
      const info = await reader.get(runId);
      expect(info?.run.endedAt).toBeGreaterThanOrEqual(info!.run.createdAt);
      expect(info?.steps.every((s) => s.startedAt !== null && s.endedAt !== null)).toBe(true);
    } finally {
      await reader.close();
    }
    expect(await within(exited, "the writer to exit")).toBe(0);
  });

  it("creates no database where there is none, and cannot write", async () => {
    const dir = tempDir();
    const missing = join(dir, "nothing.db");
    await expect(RunReader.open(missing)).rejects.toThrow(/no database at .*nothing\.db/);
    expect(existsSync(missing)).toBe(false);

    const db = join(dir, "slipway.db");
    const writer = new SqliteStorage({ path: db });
    await writer.init();
    await writer.close();
    const readOnly = new SqliteStorage({ path: db, readOnly: true });
    await readOnly.init();
    try {
      await expect(
        readOnly.addSignal({ runId: "r", name: "go", payload: {}, createdAt: Date.now() }),
      ).rejects.toThrow(/readonly/i);
    } finally {
      await readOnly.close();
    }
  });
});
