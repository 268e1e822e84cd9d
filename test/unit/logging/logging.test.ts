/**
 * A log that cannot be written (ENOSPC: /dev/full fails every write that way) ends nothing: errors
 * are handled and told once, flushing returns, and writing resumes once the destination takes writes.
 */
import { EventEmitter } from "node:events";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createLogger, guardDestination } from "../../../src/logging.js";
import { engineLog } from "../../../src/runs/runtime.js";
import { eventually, tempDir } from "../../helpers.js";

describe("a log destination on a full disk", () => {
  it("does not throw from a synchronous destination, fatal's flush included, and says so once", () => {
    const reports: string[] = [];
    const destination = pino.destination({ dest: "/dev/full", sync: true });
    guardDestination(destination, "the log", (message) => reports.push(message));
    const logger = createLogger({}, destination);
    for (let i = 0; i < 5; i++) logger.info({ i }, "a line that cannot be written");
    // pino flushes synchronously after a fatal line: a loop that never ends while the disk is full.
    logger.fatal("still here");
    destination.flushSync();
    expect(reports).toEqual([
      "slipway: cannot write the log /dev/full: the disk is full; log lines are kept in memory until it can be written\n",
    ]);
    destination.destroy();
  });

  it("handles the error of an asynchronous destination (unhandled, it would end the process)", async () => {
    const reports: string[] = [];
    const destination = pino.destination({ dest: "/dev/full", sync: false });
    guardDestination(destination, "the log", (message) => reports.push(message));
    const logger = createLogger({}, destination);
    logger.error("a line that cannot be written");
    await eventually(() => reports.length > 0, "the write error to be handled");
    logger.error("another");
    destination.flushSync();
    expect(reports).toHaveLength(1);
    destination.destroy();
  });

  it("keeps the engine's log from ending the server, its flush at close included", async () => {
    const dir = tempDir();
    symlinkSync("/dev/full", join(dir, "slipway.log"));
    const { logger, flush } = engineLog(dir);
    logger.error({ err: new Error("database or disk is full") }, "request failed");
    logger.warn("and again");
    await flush();
  });

  it("tells when the destination takes writes again, and flushes only then", () => {
    const reports: string[] = [];
    let flushed = 0;
    const destination = Object.assign(new EventEmitter(), {
      write: () => true,
      flushSync: () => void flushed++,
    });
    guardDestination(destination, "the log", (message) => reports.push(message));
    const full = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    destination.emit("error", full);
    destination.emit("error", full);
    destination.flushSync();
    expect(flushed).toBe(0);
    destination.emit("write", 10);
    destination.flushSync();
    expect(flushed).toBe(1);
    expect(reports).toEqual([
      "slipway: cannot write the log: the disk is full; log lines are kept in memory until it can be written\n",
      "slipway: the log is written again\n",
    ]);
  });
});
