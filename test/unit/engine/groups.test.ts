/** Groups: loops that repeat steps (waits included) until a condition holds, and fan-outs over a list known at run time. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { SagaDefinitionError } from "../../../src/errors.js";
import { backends, eventually, harness, within } from "../../helpers.js";

const build = z.object({ passed: z.boolean(), log: z.string() });

describe.each(backends)("groups on $name", (backend) => {
  it("a loop repeats its steps until its condition holds; each iteration reads the previous one's values", async () => {
    const h = harness(backend);
    const seen: unknown[] = [];
    const backport = saga("backport", { version: 1, input: { pkg: z.string() } })
      .action("prepare", { reads: ["pkg"], output: z.string(), run: ({ pkg }) => `${pkg}-branch` })
      .loop("attempts", {
        max: 10,
        body: (steps) =>
          steps
            .action("fix", {
              reads: ["prepare", "iteration", "previous"],
              output: z.string(),
              run: ({ prepare, iteration, previous }) => {
                seen.push(previous === null ? null : previous.build);
                return `${prepare}: patch ${iteration}`;
              },
            })
            .action("build", {
              reads: ["fix", "iteration"],
              output: build,
              run: ({ fix, iteration }) => ({ passed: iteration === 3, log: `${fix} failed` }),
            }),
        until: ({ build }) => build.passed || `last build failed: ${build.log}`,
      })
      .action("open-mr", {
        reads: ["attempts"],
        output: z.string(),
        run: ({ attempts }) => `MR for ${attempts.fix}`,
      })
      .build();
    const executor = await h.executor({ sagas: [backport] });
    const handle = await executor.start(backport, { pkg: "podman" });
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("completed");
    expect(result.output["open-mr"]).toBe("MR for podman-branch: patch 3");
    // An iteration's values are in the loop's value only.
    expect(Object.keys(result.output).sort()).toEqual(["attempts", "open-mr", "pkg", "prepare"]);
    expect(result.output.attempts).toEqual({
      fix: "podman-branch: patch 3",
      build: { passed: true, log: "podman-branch: patch 3 failed" },
    });
    expect(seen).toEqual([
      null,
      { passed: false, log: "podman-branch: patch 1 failed" },
      { passed: false, log: "podman-branch: patch 2 failed" },
    ]);
    const steps = (await executor.get(handle.id))!.steps.map((s) => `${s.action} ${s.status}`);
    expect(steps.sort()).toEqual(
      [
        "prepare completed",
        "attempts completed",
        "attempts#1.fix completed",
        "attempts#1.build completed",
        "attempts#2.fix completed",
        "attempts#2.build completed",
        "attempts#3.fix completed",
        "attempts#3.build completed",
        "open-mr completed",
      ].sort(),
    );
    const history = await executor.history(handle.id);
    expect(history.filter((e) => e.type === "loop:iteration").map((e) => e.data)).toEqual([
      { iteration: 2, after: "last build failed: podman-branch: patch 1 failed" },
      { iteration: 3, after: "last build failed: podman-branch: patch 2 failed" },
    ]);
  });

  it("a loop reaching its maximum fails with the reason, and its iterations are undone in reverse order", async () => {
    const h = harness(backend);
    const undone: string[] = [];
    const flaky = saga("flaky", { version: 1 })
      .action("branch", { run: () => {}, undo: () => void undone.push("branch") })
      .loop("attempts", {
        max: 3,
        body: (steps) =>
          steps
            .action("submit", {
              reads: ["iteration"],
              output: z.number(),
              run: ({ iteration }) => iteration,
              undo: (_input, n) => void undone.push(`submit ${n}`),
            })
            .action("build", {
              reads: ["submit"],
              output: build,
              run: ({ submit }) => ({ passed: false, log: `error in build ${submit}` }),
              undo: (_input, b) => void undone.push(`build (${b.log})`),
            }),
        until: ({ build }) => build.passed || `last build failed: ${build.log}`,
        after: ["branch"],
      })
      .build();
    const executor = await h.executor({ sagas: [flaky] });
    const result = await within((await executor.start(flaky)).result(), "the run");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      kind: "failure",
      action: "attempts",
      error: { message: "gave up after 3 iterations: last build failed: error in build 3" },
    });
    expect(undone).toEqual([
      "build (error in build 3)",
      "submit 3",
      "build (error in build 2)",
      "submit 2",
      "build (error in build 1)",
      "submit 1",
      "branch",
    ]);
  });

  it("an iteration waits durably: the run leaves memory while it waits, and each iteration takes its own signal", async () => {
    const h = harness(backend);
    const submitted: number[] = [];
    const waiter = saga("waiter", { version: 1 })
      .loop("attempts", {
        max: 5,
        body: (steps) =>
          steps
            .action("submit", {
              reads: ["iteration"],
              run: ({ iteration }) => void submitted.push(iteration),
            })
            .waitForSignal("result", { signal: "build-done", after: ["submit"], output: build }),
        until: ({ result }) => result.passed || result.log,
      })
      .build();
    const executor = await h.executor({ sagas: [waiter] });
    const handle = await executor.start(waiter);
    const waiting = async (iteration: number) => {
      await eventually(async () => {
        const run = await executor.get(handle.id);
        return (
          run?.run.status === "waiting" &&
          run.run.owner === null &&
          run.steps.some((s) => s.action === `attempts#${iteration}.result` && s.status === "waiting")
        );
      }, `iteration ${iteration} to wait, holding nothing`);
    };
    await waiting(1);
    // A payload that fits no wait of the body is refused when sent, as for any wait.
    await expect(executor.signal(handle.id, "build-done", { passed: "yes" })).rejects.toThrow(
      /payload of signal "build-done" does not fit action "result"/,
    );
    await executor.signal(handle.id, "build-done", { passed: false, log: "flaky test" });
    await waiting(2);
    expect(submitted).toEqual([1, 2]);
    await executor.signal(handle.id, "build-done", { passed: true, log: "" });
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("completed");
    expect(submitted).toEqual([1, 2]);
    expect(result.output.attempts).toEqual({ result: { passed: true, log: "" } });
  });

  it("after a restart, a loop continues in the iteration it was in; earlier iterations do not run again", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const looped = saga("looped", { version: 1 })
      .loop("attempts", {
        max: 5,
        body: (steps) =>
          steps.action("work", {
            reads: ["iteration"],
            output: z.number(),
            run: async ({ iteration }) => {
              ran.push(`work ${iteration}`);
              if (iteration === 2 && ran.length === 2) await gate;
              return iteration;
            },
          }),
        until: ({ work }) => work === 3,
      })
      .build();
    const first = await h.executor({ sagas: [looped] });
    const handle = await first.start(looped);
    await eventually(() => ran.length === 2, "iteration 2 to start");
    // The executor stops while iteration 2 runs; another continues the run.
    const closing = first.close();
    release();
    await closing;
    const second = await h.executor({ sagas: [looped] });
    await second.recover();
    const result = await within(second.result(handle.id), "the run");
    expect(result.status).toBe("completed");
    expect(ran).toEqual(["work 1", "work 2", "work 2", "work 3"]);
  });

  it("a cancel while an iteration waits undoes the completed iterations, last first", async () => {
    const h = harness(backend);
    const undone: number[] = [];
    const waits = saga("waits", { version: 1 })
      .loop("attempts", {
        max: 5,
        body: (steps) =>
          steps
            .action("submit", {
              reads: ["iteration"],
              output: z.number(),
              run: ({ iteration }) => iteration,
              undo: (_input, n) => void undone.push(n),
            })
            .waitForSignal("result", { signal: "build-done", after: ["submit"], output: build }),
        until: ({ result }) => result.passed,
      })
      .build();
    const executor = await h.executor({ sagas: [waits] });
    const handle = await executor.start(waits);
    await executor.signal(handle.id, "build-done", { passed: false, log: "" });
    await eventually(async () => {
      const run = await executor.get(handle.id);
      return run?.steps.some((s) => s.action === "attempts#2.result" && s.status === "waiting") ?? false;
    }, "iteration 2 to wait");
    await executor.cancel(handle.id, "not needed any more");
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("cancelled");
    expect(undone).toEqual([2, 1]);
  });

  it("a held loop continues with `retry` in the iteration that failed", async () => {
    const h = harness(backend);
    const ran: number[] = [];
    let failOnce = true;
    const held = saga("held", { version: 1, onFailure: "hold" })
      .loop("attempts", {
        max: 5,
        body: (steps) =>
          steps.action("work", {
            reads: ["iteration"],
            output: z.number(),
            run: ({ iteration }) => {
              ran.push(iteration);
              if (iteration === 2 && failOnce) {
                failOnce = false;
                throw new Error("flaky");
              }
              return iteration;
            },
          }),
        until: ({ work }) => work === 3,
      })
      .build();
    const executor = await h.executor({ sagas: [held] });
    const handle = await executor.start(held);
    expect((await within(handle.result(), "the hold")).status).toBe("failed");
    await executor.retry(handle.id);
    const result = await within(executor.result(handle.id), "the run");
    expect(result.status).toBe("completed");
    expect(ran).toEqual([1, 2, 2, 3]);
  });

  it("a fan-out runs its steps once per item of a list an earlier action produced, side by side", async () => {
    const h = harness(backend);
    const started: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fan = saga("fan", { version: 1 })
      .action("plan", { output: z.array(z.string()), run: () => ["libfoo", "libbar", "libbaz"] })
      .forEach("builds", {
        reads: ["plan"],
        items: ({ plan }) => plan,
        body: (steps) =>
          steps.action("compile", {
            reads: ["item", "index"],
            output: z.string(),
            run: async ({ item, index }) => {
              started.push(item);
              await gate;
              return `${index}:${item}.rpm`;
            },
          }),
      })
      .action("publish", {
        reads: ["builds"],
        output: z.array(z.string()),
        run: ({ builds }) => builds.map((b) => b.compile),
      })
      .build();
    const executor = await h.executor({ sagas: [fan] });
    const handle = await executor.start(fan);
    await eventually(() => started.length === 3, "every item to start before any ends");
    release();
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("completed");
    expect(result.output.publish).toEqual(["1:libfoo.rpm", "2:libbar.rpm", "3:libbaz.rpm"]);
  });

  it("a fan-out with more items than its limit fails, saying so; a failed item undoes the others", async () => {
    const h = harness(backend);
    const undone: string[] = [];
    const tooMany = saga("too-many", { version: 1, input: { n: z.number() } })
      .forEach("builds", {
        reads: ["n"],
        max: 4,
        items: ({ n }) => Array.from({ length: n }, (_, i) => i + 1),
        body: (steps) =>
          steps.action("compile", {
            reads: ["item"],
            run: ({ item }) => {
              if (item === 3) throw new Error("item 3 does not build");
            },
            undo: ({ item }) => void undone.push(`compile ${item}`),
          }),
      })
      .build();
    const executor = await h.executor({ sagas: [tooMany] });
    const over = await within((await executor.start(tooMany, { n: 5 })).result(), "the run");
    expect(over.cause).toMatchObject({
      action: "builds",
      error: { message: 'forEach "builds": 5 items, over its limit of 4 (max)' },
    });
    const failing = await within((await executor.start(tooMany, { n: 4 })).result(), "the run");
    expect(failing.status).toBe("compensated");
    expect(failing.cause).toMatchObject({ action: "builds#3.compile" });
    expect(undone.sort()).toEqual(["compile 1", "compile 2", "compile 4"]);
  });

  it("refuses groups it cannot run, naming them", () => {
    expect(() =>
      saga("bad", { version: 1 })
        .loop("outer", {
          max: 0,
          body: (steps) => steps.action("fix", { reads: ["nothing" as never], run: () => {} }),
          until: () => true,
        })
        .build(),
    ).toThrow(SagaDefinitionError);
    try {
      saga("bad", { version: 1 })
        .loop("outer", {
          max: 0,
          body: (steps) => steps.action("fix", { reads: ["nothing" as never], run: () => {} }),
          until: () => true,
        })
        .build();
    } catch (error) {
      expect((error as SagaDefinitionError).problems).toEqual([
        'action "outer": max must be an integer >= 1, got 0',
        'loop "outer": action "fix" reads "nothing", which nothing produces',
      ]);
    }
  });
});
