/**
 * What a job records of its wait for admission, for `show`'s phases: nothing when it is granted at
 * once; otherwise when it asked, what it waited for (the lock, who held it, its place in line), and
 * when it was granted, or that it never was. No processes: admission and a stand-in context.
 */
import { describe, expect, it } from "vitest";
import type { ActionContext } from "../../../src/definition/types.js";
import type { JsonObject } from "../../../src/json.js";
import type { Step } from "../../../src/pipeline/plan.js";
import { JobResources } from "../../../src/pipeline/resources.js";
import type { AdmissionTiming } from "../../../src/pipeline/timing.js";
import { Admission } from "../../../src/scheduler/admission.js";
import { ClusterLocks } from "../../../src/scheduler/cluster-locks.js";
import { MemoryLockStore } from "../../../src/storage/memory-locks.js";
import { eventually, within } from "../../wait.js";

const deploy = {
  action: "deploy",
  kind: "job",
  label: "deploy",
  needs: [],
  job: { name: "deploy", resources: { locks: ["swarm"] } },
} as unknown as Step;

function context(runId: string, signal = new AbortController().signal) {
  const recorded: { timing?: JsonObject } = {};
  const ctx = {
    runId,
    runName: `${runId}-name`,
    action: "deploy",
    attempt: 1,
    signal,
    progress: () => {},
    timing: (facts: JsonObject) => {
      recorded.timing = { ...recorded.timing, ...facts };
    },
  } as unknown as ActionContext;
  return { ctx, recorded };
}

describe("a job's admission timing", () => {
  it("records the wait by reason and holder, and nothing for a grant at once", async () => {
    const resources = new JobResources(
      new Admission({ capacity: { memoryBytes: 1e9, cpu: 4, diskBytes: 0, locks: { swarm: 1 } } }),
    );
    const first = context("r0");
    const held = await resources.admit(first.ctx, "release", deploy, "release");
    expect(first.recorded.timing).toBeUndefined();

    const second = context("r1");
    const asked = Date.now();
    const pending = resources.admit(second.ctx, "release", deploy, "release");
    // While it waits, `show` can ask what it has waited for so far.
    const so = await eventually(() => resources.waiting("r1", "deploy"), "r1 to be told why it waits");
    expect(so.grantedAt).toBeNull();
    held.release();
    const grant = await within(pending, "r1's grant");
    const admission = second.recorded.timing?.admission as AdmissionTiming;
    expect(admission.at).toBeGreaterThanOrEqual(asked);
    expect(admission.grantedAt).toBe(grant.since);
    expect(admission.waits).toEqual([
      {
        at: admission.at,
        kind: "lock",
        resource: "swarm",
        holder: { run: "r0", runName: "r0-name", job: "deploy" },
        position: 1,
        message: expect.stringContaining("waits for lock swarm (1 of 1 held by run r0 (r0-name) job deploy"),
      },
    ]);
    expect(resources.waiting("r1", "deploy")).toBeUndefined();
    grant.release();
  });

  it("records a wait cut short (cancelled) as never granted", async () => {
    const resources = new JobResources(
      new Admission({ capacity: { memoryBytes: 1e9, cpu: 4, diskBytes: 0, locks: { swarm: 1 } } }),
    );
    const held = await resources.admit(context("r0").ctx, "release", deploy, "release");
    const abort = new AbortController();
    const waiting = context("r1", abort.signal);
    const pending = resources.admit(waiting.ctx, "release", deploy, "release");
    await eventually(() => resources.waiting("r1", "deploy"), "r1 to be told why it waits");
    abort.abort(new Error("cancelled"));
    await expect(pending).rejects.toThrow("cancelled");
    expect(waiting.recorded.timing?.admission).toMatchObject({ grantedAt: null, waits: [{ kind: "lock" }] });
    held.release();
  });

  it("records a wait granted before the queue said why as a wait for admission, of no known reason", async () => {
    let now = 1_000;
    const resources = new JobResources(
      new Admission({
        capacity: { memoryBytes: 1e9, cpu: 4, diskBytes: 0, locks: { swarm: 1 } },
        now: () => now,
      }),
    );
    const held = await resources.admit(context("r0").ctx, "release", deploy, "release");
    const quick = context("r1");
    const pending = resources.admit(quick.ctx, "release", deploy, "release");
    // Released in the same turn: granted 5 ms (of admission's clock) later, before any explanation.
    now += 5;
    held.release();
    (await within(pending, "r1's grant")).release();
    expect(quick.recorded.timing?.admission).toMatchObject({
      grantedAt: 1_005,
      waits: [{ kind: "admission", message: "admitted before the queue said why it waited" }],
    });
  });
});

describe("a job's admission with locks shared by a cluster", () => {
  it("waits for the slot held on another worker, says so on every worker, and records the wait", async () => {
    const store = new MemoryLockStore();
    const capacity = { memoryBytes: 1e9, cpu: 4, diskBytes: 0, locks: { swarm: 1 } };
    const workers = ["w1", "w2"].map((owner) => {
      const resources = new JobResources(new Admission({ capacity }));
      const cluster = new ClusterLocks({
        store,
        owner,
        capacity: capacity.locks,
        deadOwners: async () => [],
        pollMs: 5,
      });
      resources.useClusterLocks(cluster);
      return { resources, cluster };
    });
    const [a, b] = workers as [(typeof workers)[0], (typeof workers)[0]];
    try {
      const held = await a.resources.admit(context("r0").ctx, "release", deploy, "release");
      const second = context("r1");
      const pending = b.resources.admit(second.ctx, "release", deploy, "release");
      // The waiting job's worker and the holder's worker say the same.
      const said =
        /^waits for lock swarm \(1 of 1 held by run r0 \(r0-name\) job deploy since \S+ on worker w1\); 1st in line$/;
      await eventually(() => said.test(b.resources.explain("r1", "deploy") ?? ""), "w2 to explain r1");
      await eventually(() => said.test(a.resources.explain("r1", "deploy") ?? ""), "w1 to explain r1");
      expect(b.resources.pools().find((p) => p.name === "lock:swarm")).toMatchObject({
        free: 0,
        held: [{ run: "r0", worker: "w1" }],
      });
      await eventually(() => b.resources.waiting("r1", "deploy"), "r1's wait recorded so far");
      held.release();
      const grant = await within(pending, "r1's grant");
      expect(grant.waitedFor).toEqual(["lock:swarm"]);
      const admission = second.recorded.timing?.admission as AdmissionTiming;
      expect(admission.waits[0]).toMatchObject({ kind: "lock", resource: "swarm", holder: { run: "r0" } });
      grant.release();
      await eventually(async () => (await store.view()).slots.length === 0, "swarm free");
    } finally {
      for (const { cluster } of workers) await cluster.close();
    }
  });
});
