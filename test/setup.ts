/**
 * Loaded before every test file (vitest `setupFiles`): every executor the test process opens is tracked,
 * and a test that leaves an executor, a server or a child process open fails (see ./leaks.ts).
 */
import { afterAll, afterEach, beforeEach } from "vitest";
import { Executor } from "../src/engine/executor.js";
import { enter, sweep, trackClosable } from "./leaks.js";
import { prepareTestDatabase } from "./storage-backend.js";

await prepareTestDatabase();

// Every Executor.open of this test process, whoever calls it: a harness, a test, or the code under test.
const open = Executor.open;
Executor.open = async function (this: typeof Executor, ...args: Parameters<typeof Executor.open>) {
  return trackClosable(await open.apply(this, args), "executor");
} as typeof Executor.open;

beforeEach(() => enter("test"));

// Registered before any test file's hooks, so it runs after them (vitest runs after-hooks as a stack):
// the test's own cleanups have had their chance.
afterEach(async () => {
  const leaked = await sweep("test");
  enter("file");
  if (leaked.length > 0) throw new Error(`the test left these open (now closed):\n${leaked.join("\n")}`);
});

afterAll(async () => {
  const leaked = await sweep("file");
  if (leaked.length > 0) throw new Error(`the test file left these open (now closed):\n${leaked.join("\n")}`);
});
