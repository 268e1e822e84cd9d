/**
 * Named locks across a cluster (issue 13): three `slipway serve` processes on one PostgreSQL, runs
 * submitted to all three, each run's job needing `swarm: 1`. A side log of enter/leave lines, appended
 * by the jobs (O_APPEND), shows that no two were ever inside at once, and the queue of any worker
 * shows the whole cluster's waiters with the holder's worker; a worker killed with -9 holding the
 * lock does not keep it. Skipped without PostgreSQL unless SLIPWAY_REQUIRE_PG is set.
 */
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { QueueResponse, SubmitResponse, WorkersResponse } from "../../../src/runs/schemas.js";
import { freshDatabase, startPostgres } from "../../../src/testing/postgres.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

const server = await startPostgres();
if (!server && process.env.SLIPWAY_REQUIRE_PG)
  throw new Error("PostgreSQL is required (SLIPWAY_REQUIRE_PG) but not installed");
afterAll(() => server?.stop());

/** A worker's own directory (its `.slipway` data), on the cluster's database. */
class Worker extends Project {
  constructor(private readonly url: string) {
    super();
  }
  override get db(): string {
    return this.url;
  }
}

const RUNS = 200;

describe.runIf(server !== undefined)("named locks across three workers on one PostgreSQL", () => {
  it(`${RUNS} runs that each need swarm: 1 never overlap, and every worker's queue names the holder's worker`, async () => {
    const url = await freshDatabase(server!.url, "cluster_locks");
    const workers = [new Worker(url), new Worker(url), new Worker(url)];
    const side = join(workers[0]!.dir, "side.log");
    for (const w of workers) w.write("slipway.yml", "locks: { swarm: 1 }\n");
    const servers: Server[] = [];
    for (const w of workers) servers.push(await startServer(w, ["--config", "slipway.yml"]));

    const pipeline = `name: swarm
inputs:
  n: {}
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: |
      echo "enter \${{ inputs.n }}" >> ${side}
      sleep 0.02
      echo "leave \${{ inputs.n }}" >> ${side}
`;
    const ids: string[] = [];
    const submit = async (n: number) => {
      const body = { file: { name: "swarm.yml", source: pipeline }, inputs: { n: String(n) } };
      ids.push((await servers[n % 3]!.json<SubmitResponse>("POST", "/runs", body, 201)).id);
    };
    // Ten at a time, spread over the three workers' APIs.
    for (let n = 0; n < RUNS; n += 10)
      await Promise.all(Array.from({ length: Math.min(10, RUNS - n) }, (_, i) => submit(n + i)));

    // While they queue: the third worker's queue holds waiters of the whole cluster, each saying
    // who holds swarm and on which worker.
    // (A waiter may also, for a moment, wait behind a reservation: the lock just freed and promised.)
    const self = (await servers[2]!.json<WorkersResponse>("GET", "/workers")).workers.find((e) => e.self)!;
    const heldElsewhere =
      /^waits for lock swarm \(1 of 1 held by run \S+ job deploy since \S+ on worker (\S+)\); \d+(st|nd|rd|th) in line$/;
    const wait = await eventually(
      async () => {
        const { jobs } = await servers[2]!.json<QueueResponse>("GET", "/queue");
        return jobs.find((j) => {
          const holder = j.reason === "admission" ? heldElsewhere.exec(j.message)?.[1] : undefined;
          return holder !== undefined && holder !== self.id;
        });
      },
      "a waiter whose lock is held on another worker in the third worker's queue",
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(wait.message).toMatch(heldElsewhere);

    const lines = () => workers[0]!.read("side.log").split("\n").filter(Boolean);
    await eventually(
      () => lines().filter((l) => l.startsWith("leave")).length === RUNS,
      () => `${RUNS} leave lines (${lines().length} lines so far)`,
      {
        timeoutMs: 180_000,
        intervalMs: 200,
      },
    );
    for (const [i, id] of ids.entries()) await servers[i % 3]!.status(id, "completed");

    // Never two inside: every enter is followed by the leave of the same run before the next enter.
    let inside: string | undefined;
    const overlaps: string[] = [];
    for (const line of lines()) {
      const [what, n] = line.split(" ");
      if (what === "enter") {
        if (inside !== undefined) overlaps.push(`${n} entered while ${inside} was inside`);
        inside = n;
      } else if (inside === n) inside = undefined;
      else overlaps.push(`${n} left while ${inside ?? "nobody"} was inside`);
    }
    expect(overlaps).toEqual([]);
    expect(new Set(lines().filter((l) => l.startsWith("enter"))).size).toBe(RUNS);

    // Three workers in the cluster, seen from each; once everything is quiet no slot is held.
    const ran = await Promise.all(
      servers.map(async (s) => (await s.json<WorkersResponse>("GET", "/workers")).workers.length),
    );
    expect(ran).toEqual([3, 3, 3]);
    await eventually(async () => {
      const { pools } = await servers[1]!.json<{ pools: { name: string; free: number }[] }>(
        "GET",
        "/resources",
      );
      return pools.find((p) => p.name === "lock:swarm")?.free === 1;
    }, "swarm free again");
  }, 300_000);

  it("frees the slot of a worker killed with -9, so the job queued on another worker takes it", async () => {
    const url = await freshDatabase(server!.url, "cluster_locks_kill");
    const workers = [new Worker(url), new Worker(url)];
    for (const w of workers) w.write("slipway.yml", "locks: { swarm: 1 }\n");
    const [a, b] = [
      await startServer(workers[0]!, ["--config", "slipway.yml"]),
      await startServer(workers[1]!, ["--config", "slipway.yml"]),
    ];
    const dir = workers[0]!.dir;
    // Holds swarm until told to go; says its pid, so the test can end what a killed worker left.
    const pipeline = `name: hold
inputs:
  n: {}
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: |
      echo $$ > ${dir}/pid-\${{ inputs.n }}
      echo "enter \${{ inputs.n }}" >> ${dir}/side.log
      while [ ! -e ${dir}/go-\${{ inputs.n }} ]; do sleep 0.05; done
`;
    const submit = async (to: Server, n: string) =>
      (
        await to.json<SubmitResponse>(
          "POST",
          "/runs",
          { file: { name: "hold.yml", source: pipeline }, inputs: { n } },
          201,
        )
      ).id;
    await submit(a, "1");
    await eventually(
      () => workers[0]!.read("side.log").includes("enter 1"),
      "run 1 to hold swarm on worker A",
    );
    const second = await submit(b, "2");
    const aId = (await a.json<WorkersResponse>("GET", "/workers")).workers.find((e) => e.self)!.id;
    await eventually(
      async () =>
        (await b.json<QueueResponse>("GET", "/queue")).jobs.find(
          (j) => j.run === second && j.message.includes(`on worker ${aId})`),
        ),
      "run 2 on worker B to wait for swarm held on worker A",
    );

    // Run 1 is for whoever takes over A's runs: if its job runs again, it ends at once.
    workers[0]!.write("go-1", "");
    a.process.child.kill("SIGKILL");
    await a.process.done;
    // A's leftover job is A's host's business (its orphan sweep); end it here, as that sweep would.
    try {
      process.kill(Number(workers[0]!.read("pid-1").trim()), "SIGKILL");
    } catch {
      // gone with its worker
    }
    // A is found dead (its pid is gone on this host) at B's next sweep: swarm goes to run 2.
    await eventually(
      () => workers[0]!.read("side.log").includes("enter 2"),
      // What B did meanwhile, should it not come.
      () =>
        `run 2 to take swarm; side log: ${JSON.stringify(workers[0]!.read("side.log"))}; B's log ends: ${workers[1]!.read(".slipway/slipway.log").slice(-4_000)}`,
      { timeoutMs: 30_000 },
    );
    workers[0]!.write("go-2", "");
    await b.status(second, "completed");
    expect(workers[0]!.read("side.log").split("\n").filter(Boolean).slice(0, 2)).toEqual([
      "enter 1",
      "enter 2",
    ]);
    await eventually(async () => {
      const { pools } = await b.json<{ pools: { name: string; free: number }[] }>("GET", "/resources");
      return pools.find((p) => p.name === "lock:swarm")?.free === 1;
    }, "swarm free again");
  }, 120_000);
});
