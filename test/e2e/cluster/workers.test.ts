/**
 * Several `slipway serve` workers on one PostgreSQL (issue 13): submitted runs spread over the workers
 * with room; a worker killed with `kill -9` has its runs finished by the others, its completed jobs not
 * run again; a signal sent through one worker completes a run another holds. Jobs append to a side
 * log naming the worker they ran on, and wait for files the test creates.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SubmitResponse, WorkerInfo, WorkersResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Cluster, clusterServer, TWO_STEP, type Worker } from "./cluster.js";

const postgres = await clusterServer();

const GATE = `name: gate
jobs:
  approval:
    wait: { signal: go }
  after:
    needs: [approval]
    run: echo "after $WORKER" >> "$SIDE"
`;

async function submit(worker: Worker, source: string, inputs: Record<string, string> = {}): Promise<string> {
  const body = { file: { name: "pipe.yml", source }, inputs };
  return (await worker.server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

/** What `GET /workers` says of a worker's capacity: the runs it holds, its limit, its room left. */
function capacity(worker: WorkerInfo): { runs: number; maxRuns: number | null; free: number | null } {
  return { runs: worker.runs.length, maxRuns: worker.maxRuns, free: worker.free };
}

/** Which worker each run's line of `kind` names, by input n. */
function where(cluster: Cluster, kind: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of cluster.lines()) {
    const [k, n, worker] = line.split(" ");
    if (k !== kind || n === undefined || worker === undefined) continue;
    found.set(n, [...(found.get(n) ?? []), worker]);
  }
  return found;
}

describe.skipIf(!postgres)("a cluster of workers on one PostgreSQL", () => {
  it("spreads submitted runs over the workers with room", async () => {
    const cluster = await Cluster.create(postgres!, "spread");
    const workers = [
      await cluster.worker("a", "max_runs: 2"),
      await cluster.worker("b", "max_runs: 2"),
      await cluster.worker("c", "max_runs: 2"),
    ];
    // All six through worker a: it holds two, the rest wait in the database for b and c.
    const ids: string[] = [];
    for (let n = 1; n <= 6; n++) ids.push(await submit(workers[0]!, TWO_STEP, { n: String(n) }));
    await eventually(() => where(cluster, "second").size === 6, "every run at its second job");
    const perWorker = new Map<string, number>();
    for (const [, names] of where(cluster, "second")) {
      expect(names).toHaveLength(1);
      perWorker.set(names[0]!, (perWorker.get(names[0]!) ?? 0) + 1);
    }
    expect(Object.fromEntries(perWorker)).toEqual({ a: 2, b: 2, c: 2 });

    // Any worker lists the whole cluster, each with the runs it holds and its room left: none.
    const listed = await workers[1]!.server.json<WorkersResponse>("GET", "/workers");
    expect(listed.workers.map(capacity)).toEqual([
      { runs: 2, maxRuns: 2, free: 0 },
      { runs: 2, maxRuns: 2, free: 0 },
      { runs: 2, maxRuns: 2, free: 0 },
    ]);
    // The former name answers the same figures.
    const former = await workers[2]!.server.json<{ executors: WorkerInfo[] }>("GET", "/executors");
    expect(former.executors.map(capacity)).toEqual(listed.workers.map(capacity));
    const printed = await workers[0]!.project.run(["workers", ...workers[0]!.server.flags]);
    expect(printed.code).toBe(0);
    const [header, ...rows] = printed.stdout.trim().split("\n");
    expect(header).toMatch(/ RUNS +FREE$/);
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row).toMatch(/ alive .* 2 +0$/);

    writeFileSync(join(cluster.shared, "release"), "");
    for (const id of ids) await workers[2]!.server.status(id, "completed");
  });

  it("finishes a killed worker's runs on the others, its completed jobs not run again", async () => {
    const cluster = await Cluster.create(postgres!, "failover");
    const a = await cluster.worker("a", "max_runs: 10");
    await cluster.worker("b");
    const c = await cluster.worker("c");
    const ids: string[] = [];
    for (let n = 1; n <= 4; n++) ids.push(await submit(a, TWO_STEP, { n: String(n) }));
    await eventually(() => where(cluster, "second").size === 4, "every run at its second job on a");
    expect([...where(cluster, "second").values()].flat()).toEqual(["a", "a", "a", "a"]);
    // Killed once a has recorded its jobs' processes (their pid files): one killed between starting a
    // job and recording it leaves a process nobody knows of (docs/cluster.md says so).
    await eventually(
      () => ids.every((id) => existsSync(join(a.project.dir, ".slipway", "logs", id, "second.1.log.pid"))),
      "a's second jobs recorded",
    );
    // a holds the four of its ten; b and c have no limit, so no figure of room.
    const { workers } = await c.server.json<WorkersResponse>("GET", "/workers");
    expect(workers.map(capacity)).toEqual([
      { runs: 4, maxRuns: 10, free: 6 },
      { runs: 0, maxRuns: null, free: null },
      { runs: 0, maxRuns: null, free: null },
    ]);
    const printed = await c.project.run(["workers", ...c.server.flags]);
    expect(printed.stdout.trim().split("\n").slice(1)).toEqual([
      expect.stringMatching(/ alive .* 4 +6$/),
      expect.stringMatching(/ alive .* 0 +unlimited$/),
      expect.stringMatching(/ alive .* 0 +unlimited$/),
    ]);

    a.server.process.child.kill("SIGKILL");
    await a.server.process.done;
    // Same host: the dead pid is noticed at once; elsewhere the lease (10 s) would be waited out.
    await eventually(
      () => [...where(cluster, "second").values()].every((names) => names.length === 2),
      "every second job started again on b or c",
    );
    for (const names of where(cluster, "second").values()) expect(["b", "c"]).toContain(names[1]);

    // a's host starts a worker again: what the dead one left running there (the first tries of the
    // second jobs, still waiting) is killed before it serves, though b and c continue those runs now.
    await cluster.restart(a);
    writeFileSync(join(cluster.shared, "release"), "");
    for (const id of ids) await c.server.status(id, "completed");
    // Each first job ran once: committed work is never redone.
    for (const names of where(cluster, "first").values()) expect(names).toEqual(["a"]);
    // Each second job ended once, on the worker that took it over: a's leftover was killed.
    const ends = where(cluster, "end");
    expect(ends.size).toBe(4);
    for (const names of ends.values()) {
      expect(names).toHaveLength(1);
      expect(["b", "c"]).toContain(names[0]);
    }
  });

  it("completes a run held by one worker when the signal goes through another", async () => {
    const cluster = await Cluster.create(postgres!, "signal");
    const a = await cluster.worker("a");
    const b = await cluster.worker("b");
    const id = await submit(a, GATE);
    await eventually(
      async () => (await a.server.json<{ status: string }>("GET", `/runs/${id}`)).status === "waiting",
      "the run waiting for its signal",
    );
    await b.server.json("POST", `/runs/${id}/signals/go`, {});
    await a.server.status(id, "completed");
    expect(cluster.lines().filter((l) => l.startsWith("after"))).toHaveLength(1);
  });
});
