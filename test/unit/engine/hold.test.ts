/** onFailure "hold": a failure keeps completed work in place; retry continues from the failed actions. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { backends, harness, within } from "../../helpers.js";

function heldSaga(state: { fixed: boolean; runs: string[]; undone: string[] }) {
  return saga("held", { version: 1, onFailure: "hold" })
    .action("deploy", {
      produces: { stack: z.string() },
      run: (_input, ctx) => {
        state.runs.push(`deploy#${ctx.attempt}`);
        return { stack: "s-1" };
      },
      undo: () => void state.undone.push("deploy"),
    })
    .action("migrate", {
      reads: ["stack"],
      run: (_input, ctx) => {
        state.runs.push(`migrate#${ctx.attempt}`);
        if (!state.fixed) throw new Error("schema lock held");
      },
      undo: () => void state.undone.push("migrate"),
    })
    .action("announce", { after: ["migrate"], run: () => void state.runs.push("announce") })
    .build();
}

describe.each(backends)("hold and retry on $name", (backend) => {
  it("keeps completed work on failure, then retries from the failed action", async () => {
    const h = harness(backend);
    const state = { fixed: false, runs: [] as string[], undone: [] as string[] };
    const held = heldSaga(state);
    const executor = await h.executor({ sagas: [held] });
    const handle = await executor.start(held, {});
    const first = await within(handle.result(), "the hold");
    expect(first.status).toBe("failed");
    expect(first.cause).toMatchObject({
      kind: "failure",
      action: "migrate",
      error: { message: "schema lock held" },
    });
    expect(state.undone).toEqual([]);
    expect((await executor.get(handle.id))!.run.owner).toBeNull();

    state.fixed = true;
    await executor.retry(handle.id);
    const second = await within(executor.result(handle.id), "the retry");
    expect(second.status).toBe("completed");
    expect(state.runs).toEqual(["deploy#1", "migrate#1", "migrate#2", "announce"]);
    expect(state.undone).toEqual([]);
    await expect(executor.retry(handle.id)).rejects.toThrow(/is completed, not failed/);
  });

  it("a cancel of a held run undoes what completed", async () => {
    const h = harness(backend);
    const state = { fixed: false, runs: [] as string[], undone: [] as string[] };
    const held = heldSaga(state);
    const executor = await h.executor({ sagas: [held] });
    const handle = await executor.start(held, {});
    expect((await within(handle.result(), "the hold")).status).toBe("failed");
    await executor.cancel(handle.id, "giving up");
    const result = await within(executor.result(handle.id), "the cancel");
    expect(result.status).toBe("cancelled");
    expect(state.undone).toEqual(["deploy"]);
  });
});
