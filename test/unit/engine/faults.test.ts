/** An error thrown by action code outside its promise (a timer, a callback) fails that action alone. */
import { describe, expect, it } from "vitest";
import { saga } from "../../../src/definition/saga.js";
import { backends, captureLogs, harness, within } from "../../helpers.js";

describe.each(backends)("action faults on $name", (backend) => {
  it("a throw from a timer fails its attempt, is retried, and 100 healthy runs beside it complete", async () => {
    const h = harness(backend);
    const logs = captureLogs();
    const faulty = saga("faulty", { version: 1 })
      .action("notify", {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        run: (_input, ctx) =>
          new Promise<void>((resolve) => {
            // The bug: the timer's throw escapes the promise, which then never settles.
            if (ctx.attempt === 1)
              setTimeout(() => {
                throw new Error("webhook client exploded");
              }, 1);
            else resolve();
          }),
      })
      .build();
    const healthy = saga("healthy", { version: 1 })
      .action("work", { run: () => new Promise<void>((resolve) => setTimeout(resolve, 1)) })
      .build();
    const executor = await h.executor({ sagas: [faulty, healthy], logger: logs.logger });
    const others = await Promise.all(Array.from({ length: 100 }, () => executor.start(healthy, {})));
    const handle = await executor.start(faulty, {});
    const result = await within(handle.result(), "the faulty run");
    expect(result.status).toBe("completed");
    const history = await executor.history(handle.id);
    const failed = history.find((e) => e.type === "action:failed");
    expect(failed?.data).toMatchObject({ attempt: 1, error: "webhook client exploded" });
    const results = await within(Promise.all(others.map((o) => o.result())), "the healthy runs");
    expect(results.every((r) => r.status === "completed")).toBe(true);
    const line = logs.lines.find((l) => String(l.msg).includes("threw outside its promise"));
    expect(line).toMatchObject({ runId: handle.id, action: "notify", attempt: 1 });
  });

  it("without retries the run fails with the thrown error and undoes what completed", async () => {
    const h = harness(backend);
    const undone: string[] = [];
    const deploy = saga("deploy", { version: 1 })
      .action("provision", { run: () => {}, undo: () => void undone.push("provision") })
      .action("activate", {
        after: ["provision"],
        run: () =>
          new Promise<void>(() => {
            setImmediate(() => {
              throw new TypeError("cannot read properties of undefined");
            });
          }),
      })
      .build();
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, {});
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      kind: "failure",
      action: "activate",
      error: { message: "cannot read properties of undefined" },
    });
    expect(undone).toEqual(["provision"]);
  });

  it("a throw after the attempt settled is logged and ignored; the executor goes on", async () => {
    const h = harness(backend);
    const logs = captureLogs();
    let thrown!: () => void;
    const late = new Promise<void>((resolve) => {
      thrown = resolve;
    });
    const sloppy = saga("sloppy", { version: 1 })
      .action("fire", {
        run: () => {
          setTimeout(() => {
            thrown();
            throw new Error("too late");
          }, 5);
        },
      })
      .build();
    const healthy = saga("healthy", { version: 1 })
      .action("work", { run: () => {} })
      .build();
    const executor = await h.executor({ sagas: [sloppy, healthy], logger: logs.logger });
    const handle = await executor.start(sloppy, {});
    expect((await within(handle.result(), "the run")).status).toBe("completed");
    await within(late, "the late throw");
    const again = await executor.start(healthy, {});
    expect((await within(again.result(), "a second run")).status).toBe("completed");
    expect(logs.lines.some((l) => String(l.msg).includes("after its attempt had settled"))).toBe(true);
  });
});
