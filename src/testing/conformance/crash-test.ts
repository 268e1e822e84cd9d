/** The crash conformance test: SIGKILL a child mid-commit, then each transition must be all there or absent. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Storage } from "../../storage/types.js";
import { type CrashChildPayload, toImportSpecifier, verifyCrashState } from "../crash-workload.js";
import type { CrashChildOptions } from "./options.js";

const CRASH_RUNS = 5;

async function openShared(crash: CrashChildOptions): Promise<Storage> {
  const loaded = (await import(toImportSpecifier(crash.module))) as Record<string, unknown>;
  const factory = loaded[crash.exportName];
  if (typeof factory !== "function") throw new Error(`${crash.module} does not export ${crash.exportName}`);
  const storage = (await factory(crash.arg)) as Storage;
  await storage.init();
  return storage;
}

export async function crashTest(crash: CrashChildOptions): Promise<void> {
  const saga = `crash-${randomUUID().slice(0, 8)}`;
  const payload: CrashChildPayload = { ...crash, saga };
  let committed = 0;
  for (let run = 0; run < CRASH_RUNS; run++) {
    await runAndKill(payload, 20 + Math.floor(Math.random() * 300));
    const storage = await openShared(crash);
    try {
      const total = await verifyCrashState(storage, saga);
      assert.ok(total > committed, `run ${run}: the child committed something before it was killed`);
      committed = total;
    } finally {
      await storage.close();
    }
  }
}

/** Starts the child, waits until it has committed once, lets it run `delayMs` more, then SIGKILLs it. */
async function runAndKill(payload: CrashChildPayload, delayMs: number): Promise<void> {
  const child = spawn(
    process.execPath,
    [...childLoaderArgs(payload.module), childScript(), JSON.stringify(payload)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  try {
    const ready = await new Promise<boolean>((resolve) => {
      let out = "";
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
        if (out.includes("ready")) resolve(true);
      });
      void exited.then(() => resolve(false));
      setTimeout(() => resolve(false), 20_000).unref();
    });
    if (!ready) throw new Error(`crash child never became ready:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (child.exitCode !== null)
      throw new Error(`crash child exited by itself (${child.exitCode}):\n${stderr}`);
    child.kill("SIGKILL");
    const { signal } = await exited;
    assert.equal(signal, "SIGKILL", `crash child should die by SIGKILL:\n${stderr}`);
  } finally {
    killIfAlive(child);
  }
}

function killIfAlive(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

function childScript(): string {
  // In the folder above this one: crash-child.ts under tsx/vitest, crash-child.js once compiled.
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(
    new URL(self.endsWith(".ts") ? "../crash-child.ts" : "../crash-child.js", import.meta.url),
  );
}

/** `--import <tsx>` when TypeScript must be loaded, resolved from here so the cwd does not matter. */
function childLoaderArgs(module: string): string[] {
  const needsTsx = /\.[cm]?tsx?$/.test(childScript()) || /\.[cm]?tsx?$/.test(module);
  if (!needsTsx) return [];
  const tsx = createRequire(import.meta.url).resolve("tsx");
  return ["--import", pathToFileURL(tsx).href];
}
