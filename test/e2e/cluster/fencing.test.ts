/**
 * Fencing (issue 13): a worker paused past its lease (SIGSTOP: a long GC, a stalled VM) has its runs
 * taken over by the others; woken (SIGCONT) it commits nothing for the runs it lost, though its jobs
 * ended while it slept and it tries to record them. Each run's history has its second job completed
 * once, by the worker that took it over.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../../src/engine/events.js";
import type { SubmitResponse, WorkersResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Cluster, clusterServer, TWO_STEP } from "./cluster.js";

const postgres = await clusterServer();

/** The lease (10 s) and a heartbeat, with room for a busy machine. */
const TAKEOVER_MS = 40_000;

describe.skipIf(!postgres)("a worker paused past its lease", () => {
  it("commits nothing for the runs taken from it once it wakes", async () => {
    const cluster = await Cluster.create(postgres!, "fencing");
    const a = await cluster.worker("a");
    const b = await cluster.worker("b");
    const ids: string[] = [];
    for (const n of ["1", "2"]) {
      const body = { file: { name: "pipe.yml", source: TWO_STEP }, inputs: { n } };
      ids.push((await a.server.json<SubmitResponse>("POST", "/runs", body, 201)).id);
    }
    const seconds = (worker: string) =>
      cluster.lines().filter((l) => /^second /.test(l) && l.endsWith(worker));
    await eventually(() => seconds("a").length === 2, "both second jobs running on a");
    await eventually(
      () => ids.every((id) => existsSync(join(a.project.dir, ".slipway", "logs", id, "second.1.log.pid"))),
      "a's second jobs recorded",
    );

    a.server.process.child.kill("SIGSTOP");
    try {
      // Its pid lives (stopped): only the lease tells it is gone.
      await eventually(() => seconds("b").length === 2, "b to take both runs over", TAKEOVER_MS);
      // Both tries end: b's, and a's own, which ran on while a was stopped.
      writeFileSync(join(cluster.shared, "release"), "");
      for (const id of ids) await b.server.status(id, "completed");
      await eventually(
        () => cluster.lines().filter((l) => /^end .* a$/.test(l)).length === 2,
        "a's jobs to end",
      );
    } finally {
      a.server.process.child.kill("SIGCONT");
    }
    // Awake, it records its jobs' ends: refused, the runs are not its own. It lives on as a worker.
    await eventually(async () => {
      const { workers } = await b.server.json<WorkersResponse>("GET", "/workers");
      const self = workers.find((w) => w.pid === a.server.process.child.pid);
      return self?.alive === true && self.runs.length === 0;
    }, "a beating again, holding nothing");
    // Answering again after waking, a has long since tried to commit what its jobs did.
    await a.server.json("GET", "/runs");
    for (const id of ids) {
      const events: RunEvent[] = await b.server.events(id);
      const completed = events.filter((e) => e.type === "action:completed" && e.action === "second");
      expect(completed).toHaveLength(1);
      expect(events.at(-1)?.type).toBe("run:completed");
      const detail = await b.server.json<{ status: string }>("GET", `/runs/${id}`);
      expect(detail.status).toBe("completed");
    }
    // Its first jobs ran once, on a, before the pause.
    expect(
      cluster
        .lines()
        .filter((l) => l.startsWith("first "))
        .sort(),
    ).toEqual(["first 1 a", "first 2 a"]);
  });
});
