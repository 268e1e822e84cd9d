/** The leak registry: what a test leaves open is reported and closed; what it closed is not. */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { Executor } from "../../../src/engine/executor.js";
import { createLogger } from "../../../src/logging.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { tempDir } from "../../helpers.js";
import { enter, sweep, trackChild, trackServer } from "../../leaks.js";
import { within } from "../../wait.js";

/** Runs `body` as if it were a test of its own, and returns what the after-test check would report. */
async function leaksOf(body: () => Promise<void>): Promise<string[]> {
  // Entries of the real test stay with it: this test's own sweep sees them.
  enter("file");
  try {
    await body();
    return await sweep("file");
  } finally {
    enter("test");
  }
}

describe("the leak registry", () => {
  it("reports an executor that was not closed, with where it was opened, and closes it", async () => {
    let executor: Executor | undefined;
    const leaked = await leaksOf(async () => {
      executor = await Executor.open({
        storage: new MemoryStorage(),
        sagas: [],
        dataDir: tempDir(),
        logger: createLogger({ level: "silent" }),
      });
    });
    expect(leaked).toEqual([
      expect.stringMatching(/^executor, opened at test\/unit\/suite\/leaks\.test\.ts:\d+$/),
    ]);
    // It was closed for us: closing again is a no-op, and nothing is reported twice.
    await executor?.close();
    expect(await leaksOf(async () => {})).toEqual([]);
  });

  it("reports nothing for an executor the test closed", async () => {
    const leaked = await leaksOf(async () => {
      const executor = await Executor.open({
        storage: new MemoryStorage(),
        sagas: [],
        dataDir: tempDir(),
        logger: createLogger({ level: "silent" }),
      });
      await executor.close();
    });
    expect(leaked).toEqual([]);
  });

  it("reports a child process still running and kills it; one already killed is only reaped", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const killed = spawn("sleep", ["30"], { stdio: "ignore" });
    const leaked = await leaksOf(async () => {
      trackChild(child, "a sleep");
      trackChild(killed, "a killed sleep");
      killed.kill("SIGKILL");
    });
    expect(leaked).toEqual([expect.stringMatching(/^child process \d+ \(a sleep\)/)]);
    expect(child.signalCode).toBe("SIGKILL");
    expect(killed.signalCode).toBe("SIGKILL");
  });

  it("reports a server still listening and closes it", async () => {
    const server = createServer();
    await within(new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)), "listening");
    const leaked = await leaksOf(async () => trackServer(server, "on a port"));
    expect(leaked).toEqual([expect.stringMatching(/^server on a port/)]);
    expect(server.listening).toBe(false);
  });
});
