/**
 * Registry of what tests open (executors, servers, child processes): test/setup.ts fails a test that
 * leaves one open once its own cleanups have run, and closes it so the next test starts clean.
 */
import type { ChildProcess } from "node:child_process";
import { within } from "./wait.js";

interface Entry {
  what: string;
  /** Opened by a test (checked after it) or by a file's `beforeAll` (checked after the file). */
  scope: Scope;
  /** Whether it is still open; may wait (bounded) for something already on its way out. */
  isOpen: () => boolean | Promise<boolean>;
  /** Closes it for good after it leaked. */
  close: () => Promise<void>;
}

export type Scope = "test" | "file";

const entries = new Set<Entry>();
let scope: Scope = "file";

/** Called by test/setup.ts: from now on what opens belongs to a test (`test`) or to the file. */
export function enter(next: Scope): void {
  scope = next;
}

/** Registers something open; it must be closed by the end of the test (or file) that opened it. */
export function track(what: string, isOpen: Entry["isOpen"], close: Entry["close"]): void {
  entries.add({ what: `${what}${openedAt()}`, scope, isOpen, close });
}

/** A child process: open until it exits. One the test already killed gets a bounded moment to be reaped. */
export function trackChild(child: ChildProcess, what: string): void {
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((resolve) => {
    if (!running()) resolve();
    else child.once("exit", () => resolve());
  });
  const reaped = () => within(exited, `${what} (pid ${child.pid}) to exit`, 5_000).catch(() => undefined);
  track(
    `child process ${child.pid} (${what})`,
    async () => {
      if (running() && child.killed) await reaped();
      return running();
    },
    async () => {
      child.kill("SIGKILL");
      await reaped();
    },
  );
}

/** An in-process HTTP (or any net) server: open while it listens. */
export function trackServer(
  server: { readonly listening: boolean; close(callback?: (error?: Error) => void): unknown },
  what: string,
): void {
  track(
    `server ${what}`,
    () => server.listening,
    () => within(new Promise<void>((resolve) => server.close(() => resolve())), `${what} to close`),
  );
}

/** Anything with an async `close()`: open until `close()` is called. */
export function trackClosable<T extends { close(): Promise<void> }>(thing: T, what: string): T {
  let closed = false;
  const close = thing.close.bind(thing);
  thing.close = () => {
    closed = true;
    return close();
  };
  track(
    what,
    () => !closed,
    () => within(thing.close(), `${what} to close`),
  );
  return thing;
}

/**
 * Forgets every entry of `of` and returns those still open, after closing them. test/setup.ts runs it
 * after each test (and after each file), when the test's own cleanups have run.
 */
export async function sweep(of: Scope): Promise<string[]> {
  const leaked: string[] = [];
  for (const entry of [...entries]) {
    if (entry.scope !== of) continue;
    entries.delete(entry);
    if (!(await entry.isOpen())) continue;
    leaked.push(entry.what);
    try {
      await entry.close();
    } catch (error) {
      leaked.push(`  (and closing it failed: ${error instanceof Error ? error.message : String(error)})`);
    }
  }
  return leaked;
}

/** Where in a test file the thing was opened, to name it in the failure. */
function openedAt(): string {
  const lines = new Error().stack?.split("\n").slice(1) ?? [];
  const line = lines.find((l) => /\/test\//.test(l) && !/\/test\/(leaks|setup|helpers|wait)\.ts/.test(l));
  const where = line?.match(/\/(test\/[^):]+:\d+)/)?.[1];
  return where ? `, opened at ${where}` : "";
}
