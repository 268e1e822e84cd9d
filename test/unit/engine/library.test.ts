/** The saga API as a library user meets it: starting without input, and outputs of any JSON shape. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { SagaDefinitionError } from "../../../src/errors.js";
import { backends, harness, within } from "../../helpers.js";

describe.each(backends)("the saga API on $name", (backend) => {
  it("starts a saga that takes no input without an empty {}", async () => {
    const h = harness(backend);
    const nightly = saga("nightly", { version: 1 })
      .action("sweep", { run: () => {} })
      .build();
    const release = saga("release", { version: 1, input: { tag: z.string() } })
      .action("publish", { reads: ["tag"], run: () => {} })
      .build();
    const executor = await h.executor({ sagas: [nightly, release] });
    const handle = await executor.start(nightly);
    expect((await within(handle.result(), "the run")).status).toBe("completed");
    const named = await executor.start(nightly, undefined, { runName: "nightly-1" });
    expect((await executor.get(named.id))?.run.runName).toBe("nightly-1");
    // @ts-expect-error a saga with a required input needs it
    await expect(executor.start(release)).rejects.toThrow(/invalid input for saga release: tag/);
  });

  it("an action's output can be one value of any JSON shape, read by later actions under the action's name and given to its undo", async () => {
    const h = harness(backend);
    const undone: string[][] = [];
    const built: string[] = [];
    const plan = saga("plan", { version: 1 })
      .action("packages", {
        output: z.array(z.string()),
        run: () => ["libfoo", "libbar"],
        undo: (_input, packages) => void undone.push(packages),
      })
      .action("build", {
        reads: ["packages"],
        output: z.number(),
        run: ({ packages }) => {
          built.push(...packages);
          return packages.length;
        },
      })
      .action("fail", {
        reads: ["build"],
        run: ({ build }) => {
          throw new Error(`built ${build}, then failed`);
        },
      })
      .build();
    const executor = await h.executor({ sagas: [plan] });
    const handle = await executor.start(plan);
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("compensated");
    expect(built).toEqual(["libfoo", "libbar"]);
    expect(undone).toEqual([["libfoo", "libbar"]]);
    const run = await executor.get(handle.id);
    expect(run?.steps.find((s) => s.action === "packages")?.output).toEqual({
      packages: ["libfoo", "libbar"],
    });
  });

  it("an output that does not fit its schema fails the action, naming it", async () => {
    const h = harness(backend);
    const bad = saga("bad", { version: 1 })
      .action("count", { output: z.number().int(), run: () => 1.5 as number })
      .build();
    const executor = await h.executor({ sagas: [bad] });
    const result = await within((await executor.start(bad)).result(), "the run");
    expect(result.cause).toMatchObject({
      kind: "failure",
      error: { message: expect.stringContaining('action "count" produced an invalid output') },
    });
  });

  it("a signal's payload can be taken whole as one output; one that does not fit is refused when sent", async () => {
    const h = harness(backend);
    const review = saga("review", { version: 1 })
      .waitForSignal("verdict", {
        signal: "reviewed",
        output: z.object({ approved: z.boolean(), notes: z.array(z.string()) }),
      })
      .action("merge", {
        reads: ["verdict"],
        output: z.string(),
        run: ({ verdict }) => (verdict.approved ? `merged (${verdict.notes.join(", ")})` : "not merged"),
      })
      .build();
    const executor = await h.executor({ sagas: [review] });
    const handle = await executor.start(review);
    await expect(executor.signal(handle.id, "reviewed", { approved: "yes" })).rejects.toThrow(
      /payload of signal "reviewed" does not fit action "verdict": verdict.approved/,
    );
    await executor.signal(handle.id, "reviewed", { approved: true, notes: ["lgtm"] });
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("completed");
    expect(result.output).toMatchObject({
      verdict: { approved: true, notes: ["lgtm"] },
      merge: "merged (lgtm)",
    });
  });
});

describe("output and produces", () => {
  it("are one or the other", () => {
    expect(() =>
      saga("both", { version: 1 }).action("x", {
        output: z.string(),
        produces: { y: z.string() },
        run: () => "x",
      }),
    ).toThrow(SagaDefinitionError);
  });
});
