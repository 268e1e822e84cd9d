/**
 * Recovery phase (runs in the bench parent): SIGKILL a child halfway through slow chains, record what
 * was committed, restart, and time the restart child from spawn to every run done.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  type ChildMessage,
  epochNow,
  type Figures,
  removeDir,
  round,
  startChild,
  tempDir,
} from "./common.js";

const RUNS = 200;
const ACTIONS = 10;
const BODY_MS = 50;
const TOTAL = RUNS * ACTIONS;

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

function readRuns(dir: string): string[] {
  const file = join(dir, "runs.log");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.length > 0);
}

/** Completed step count, read through a separate connection while the child writes (WAL allows it). */
function completedCount(db: Database.Database): number {
  return (db.prepare("SELECT COUNT(*) AS n FROM steps WHERE status = 'completed'").get() as { n: number }).n;
}

export async function recovery(): Promise<{ figures: Figures; notes: string[] }> {
  const dir = tempDir("recovery");
  const args = [dir, String(RUNS), String(ACTIONS), String(BODY_MS)];
  const notes: string[] = [];

  // 1. Run until about half of the actions have their completion committed, then SIGKILL.
  let childError: string | undefined;
  const first = startChild("recovery-child", ["run", ...args], {
    onMessage: (m: ChildMessage) => {
      if (m.type === "error") childError = m.message;
    },
  });
  const firstExit = exited(first);
  let watcher: Database.Database | undefined;
  let atKill = 0;
  const deadline = Date.now() + 60_000;
  while (true) {
    if (childError) throw new Error(`recovery run child failed: ${childError}`);
    if (first.exitCode !== null) throw new Error(`recovery run child exited early (${first.exitCode})`);
    if (Date.now() > deadline) throw new Error("recovery run child made no progress");
    if (!watcher && existsSync(join(dir, "bench.sqlite"))) {
      try {
        watcher = new Database(join(dir, "bench.sqlite"), { readonly: true, fileMustExist: true });
        watcher.pragma("busy_timeout = 1000");
      } catch {
        watcher = undefined;
      }
    }
    if (watcher) {
      try {
        atKill = completedCount(watcher);
      } catch {
        // Schema not there yet.
      }
      if (atKill >= TOTAL / 2) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  first.kill("SIGKILL");
  await firstExit;
  watcher?.close();

  // 2. What had its completion committed before the kill, and which bodies had run.
  const db = new Database(join(dir, "bench.sqlite"), { fileMustExist: true });
  const committed = new Set(
    (
      db.prepare("SELECT run_id AS e, action AS a FROM steps WHERE status = 'completed'").all() as {
        e: string;
        a: string;
      }[]
    ).map((r) => `${r.e} ${r.a}`),
  );
  const runningAtKill = (
    db.prepare("SELECT COUNT(*) AS n FROM steps WHERE status = 'running'").get() as { n: number }
  ).n;
  db.close();
  const runsBefore = readRuns(dir).length;
  // The restart cannot finish before the run with the most actions left has run them.
  const committedPer = new Map<string, number>();
  for (const key of committed) {
    const id = key.split(" ")[0]!;
    committedPer.set(id, (committedPer.get(id) ?? 0) + 1);
  }
  const longestRemaining = committedPer.size < RUNS ? ACTIONS : ACTIONS - Math.min(...committedPer.values());

  // 3. Restart: a fresh process that only opens an executor (recovery happens on open) and waits.
  let done: { at: number; figures: Figures } | undefined;
  let restartError: string | undefined;
  const spawnedAt = epochNow();
  const second = startChild("recovery-child", ["restart", ...args], {
    onMessage: (m: ChildMessage) => {
      if (m.type === "done") done = { at: epochNow(), figures: m.figures };
      else if (m.type === "error") restartError = m.message;
    },
  });
  await exited(second);
  if (!done) throw new Error(`restart child failed: ${restartError ?? `exit ${second.exitCode}`}`);
  const restartMs = done.at - spawnedAt;

  // 4. Reruns, from the side file.
  const runs = readRuns(dir);
  const counts = new Map<string, number>();
  for (const key of runs) counts.set(key, (counts.get(key) ?? 0) + 1);
  const duplicates = [...counts.values()].filter((c) => c > 1).length;
  const completedRerun = runs.slice(runsBefore).filter((key) => committed.has(key)).length;
  const missing = TOTAL - counts.size;
  if (missing > 0) notes.push(`recovery: ${missing} actions never ran`);
  const f = done.figures;
  if (f.completed !== RUNS) notes.push(`recovery: only ${f.completed}/${RUNS} runs completed`);
  removeDir(dir);
  return {
    figures: {
      "recovery.runs": RUNS,
      "recovery.actions": TOTAL,
      "recovery.body_ms": BODY_MS,
      "recovery.committed_at_kill": committed.size,
      "recovery.running_at_kill": runningAtKill,
      "recovery.restart_to_done_ms": round(restartMs, 1),
      "recovery.restart.spawn_to_loaded_ms": round(f.loadedAt! - spawnedAt, 1),
      "recovery.restart.loaded_to_opened_ms": round(f.openedAt! - f.loadedAt!, 1),
      "recovery.restart.opened_to_done_ms": round(f.doneAt! - f.openedAt!, 1),
      "recovery.restart.min_possible_ms": longestRemaining * BODY_MS,
      "recovery.completed_runs": f.completed!,
      "recovery.duplicates": duplicates,
      "recovery.extra_runs": runs.length - counts.size,
      "recovery.completed_rerun": completedRerun,
      "recovery.never_ran": missing,
      ...Object.fromEntries(
        Object.entries(f)
          .filter(([k]) => k.startsWith("storage.") && !k.includes("close"))
          .map(([k, v]) => [`recovery.restart.${k}`, v]),
      ),
    },
    notes,
  };
}
