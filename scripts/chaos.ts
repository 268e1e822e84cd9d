/**
 * `npm run chaos`: a cluster under abuse (issue 13). Three `slipway serve` workers on one throwaway
 * PostgreSQL run RUNS runs of story 3's shapes (light checks; deploys that hold `swarm: 1`; deploys
 * whose tests fail, undone; runs cancelled while they wait), submitted round-robin through the live
 * workers with idempotency keys, while workers are killed (`kill -9`, then started again), paused past
 * their lease (SIGSTOP, SIGCONT) and PostgreSQL is restarted once. Then it checks and prints:
 * every run ended in the status its shape expects; no completed job started again (the stored
 * history); `swarm` never had two holders (a side log of enter/leave lines, in append order); no
 * slot is held once everything is quiet. Exit 1 if any of those fails.
 *
 *   npm run build && npm run chaos            # RUNS=500 by default
 *   RUNS=100 npm run chaos                    # a shorter form
 *   CHAOS_KEEP=1 RUNS=150 npm run chaos       # a run not in its expected status: workers and
 *                                             # PostgreSQL left up to look at, until Ctrl-C
 *
 * The wait for runs to end gives up 2 minutes after the last run ended (10 at most); a run that
 * has not ended then is stuck, and the report says what it was doing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { freshDatabase, startPostgres } from "../src/testing/postgres.js";

const RUNS = Number(process.env.RUNS ?? 500);
const TOKEN = "chaos-token";
const BIN = resolve("dist/cli/main.js");
const dir = mkdtempSync(join(tmpdir(), "slipway-chaos-"));
const SIDE = join(dir, "side.log");
writeFileSync(SIDE, "");

type Shape = "light" | "deploy" | "failing" | "cancelled";
const EXPECTED: Record<Shape, string> = {
  light: "completed",
  deploy: "completed",
  failing: "compensated",
  cancelled: "cancelled",
};

/** A deploy's body: it holds the swarm, noting `enter`/`leave` in the side log (the overlap check). */
const SWARM_DEPLOY = `    resources: { locks: [swarm] }
    run: |
      echo "enter \${{ inputs.n }} $WORKER" >> "$SIDE"
      sleep 0.1
      echo "leave \${{ inputs.n }} $WORKER" >> "$SIDE"
    undo: "true"
`;

/** Jobs note what they do in the side log: `enter`/`leave` around the swarm, naming run and worker. */
const PIPELINES: Record<Shape, string> = {
  light: `name: light
inputs: { n: {} }
jobs:
  lint: { run: "true" }
  unit: { needs: [lint], run: "true" }
`,
  deploy: `name: deploy
inputs: { n: {} }
jobs:
  build: { run: "true" }
  deploy:
    needs: [build]
${SWARM_DEPLOY}  smoke: { needs: [deploy], run: "true" }
`,
  failing: `name: failing
inputs: { n: {} }
jobs:
  deploy:
${SWARM_DEPLOY}  smoke: { needs: [deploy], run: "exit 1" }
`,
  cancelled: `name: cancelled
inputs: { n: {} }
jobs:
  approval: { wait: { signal: go } }
  after: { needs: [approval], run: "true" }
`,
};

interface Worker {
  name: string;
  dir: string;
  process: ChildProcess;
  url: string | undefined;
  stopped: boolean;
}

const log = (line: string) => console.log(`chaos ${((Date.now() - t0) / 1000).toFixed(1)}s: ${line}`);
const t0 = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = await startPostgres({ durable: true });
if (!server) {
  console.error("chaos: PostgreSQL's server is not installed (apt-get install postgresql)");
  process.exit(1);
}
const db = await freshDatabase(server.url, "chaos");
const workers: Worker[] = [];

async function startWorker(name: string, workerDir = join(dir, name)): Promise<Worker> {
  mkdirSync(workerDir, { recursive: true });
  writeFileSync(join(workerDir, "slipway.yml"), "locks: { swarm: 1 }\njob_env: [WORKER, SIDE]\n");
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--port", "0", "--db", db, "--config", "slipway.yml", "--token", TOKEN],
    { cwd: workerDir, env: { ...process.env, WORKER: name, SIDE }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const worker: Worker = { name, dir: workerDir, process: child, url: undefined, stopped: false };
  let out = "";
  worker.url = await new Promise<string>((resolveUrl, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolveUrl(match[1]!);
    });
    child.stderr!.resume();
    child.once("exit", (code) => reject(new Error(`worker ${name} exited (${code}) before listening`)));
  });
  return worker;
}

async function api(worker: Worker, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${TOKEN}`);
  return fetch(`${worker.url}/api/v1${path}`, { signal: AbortSignal.timeout(10_000), ...init, headers });
}

/** A live worker to ask, round-robin. */
let turn = 0;
function live(): Worker {
  const up = workers.filter((w) => w.url !== undefined && !w.stopped && w.process.exitCode === null);
  return up[turn++ % up.length] ?? workers[0]!;
}

/** Asks live workers until one answers 2xx (a worker killed or paused, PostgreSQL down: another, later). */
async function until<T>(
  what: string,
  ask: (w: Worker) => Promise<Response>,
  read: (r: Response) => Promise<T>,
) {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await ask(live());
      if (response.ok) return read(response);
      if (attempt > 200) throw new Error(`${what}: ${response.status} ${await response.text()}`);
    } catch (error) {
      if (attempt > 200) throw error;
    }
    await sleep(250);
  }
}

for (const name of ["a", "b", "c"]) workers.push(await startWorker(name));
log(`3 workers on ${db}`);

const runs: { id: string; shape: Shape }[] = [];
const shapeOf = (n: number): Shape =>
  n % 10 === 9 ? "cancelled" : n % 10 === 8 ? "failing" : n % 2 === 0 ? "deploy" : "light";

async function submitAll(): Promise<void> {
  for (let n = 0; n < RUNS; n++) {
    const shape = shapeOf(n);
    const body = JSON.stringify({
      file: { name: `${shape}.yml`, source: PIPELINES[shape] },
      inputs: { n: String(n) },
    });
    const id = await until(
      `submit ${n}`,
      (w) =>
        api(w, "/runs", {
          method: "POST",
          body,
          headers: { "content-type": "application/json", "idempotency-key": `chaos-${n}` },
        }),
      async (r) => ((await r.json()) as { id: string }).id,
    );
    runs.push({ id, shape });
    if (n % 100 === 99) log(`${n + 1} submitted`);
  }
}

/**
 * What a run not in its expected status was doing: its row, steps, last events, lock rows, and the
 * tail of its owner's log (a worker's id is `host:pid:random`; its pid names the worker).
 */
async function describeStuck(stuck: { id: string; shape: Shape }[]): Promise<string> {
  const reader = new pg.Client({ connectionString: db });
  await reader.connect();
  const out: string[] = [];
  try {
    for (const run of stuck) {
      const row = (
        await reader.query<Record<string, unknown>>(
          "SELECT status, owner, revision, wake_at, cancel_requested, updated_at FROM runs WHERE id = $1",
          [run.id],
        )
      ).rows[0];
      out.push(`\nstuck run ${run.id} (${run.shape}): ${JSON.stringify(row)}`);
      const steps = await reader.query<Record<string, unknown>>(
        "SELECT action, status, attempt, failures, undo_attempt, error, undo_error FROM steps WHERE run_id = $1 ORDER BY ord",
        [run.id],
      );
      for (const step of steps.rows) out.push(`  step ${JSON.stringify(step)}`);
      const events = await reader.query<{ seq: number; type: string; action: string | null; at: string }>(
        "SELECT seq, type, action, at FROM events WHERE run_id = $1 ORDER BY seq DESC LIMIT 12",
        [run.id],
      );
      for (const e of events.rows.reverse())
        out.push(`  event ${e.seq} ${new Date(Number(e.at)).toISOString()} ${e.type} ${e.action ?? ""}`);
      const locks = await reader.query<Record<string, unknown>>(
        "SELECT 'slot' AS row, lock, holder, owner FROM lock_slots WHERE run_id = $1 UNION ALL SELECT 'waiter', lock, holder, owner FROM lock_waiters WHERE run_id = $1",
        [run.id],
      );
      for (const l of locks.rows) out.push(`  lock ${JSON.stringify(l)}`);
      const owner = typeof row?.owner === "string" ? row.owner : undefined;
      const pid = owner ? Number(owner.split(":")[1]) : undefined;
      const worker = workers.find((w) => w.process.pid === pid);
      if (worker) {
        const lines = readFileSync(join(worker.dir, ".slipway", "slipway.log"), "utf8")
          .split("\n")
          .filter(Boolean);
        const about = lines
          .filter((l) => l.includes(run.id))
          .slice(-15)
          .map(brief);
        const tail = lines.slice(-15).map(brief);
        out.push(
          `  owner: worker ${worker.name}; its log lines naming the run:`,
          ...about.map((l) => `    ${l}`),
        );
        out.push("  its log's last lines:", ...tail.map((l) => `    ${l}`));
      } else out.push(`  owner ${owner ?? "none"} is none of the live workers`);
    }
    // The swarm as a whole: a slot of an owner no longer registered is held for good.
    const slots = await reader.query<{ run_id: string; owner: string; since: string; registered: boolean }>(
      "SELECT run_id, owner, since, owner IN (SELECT id FROM executors) AS registered FROM lock_slots",
    );
    const waiters = await reader.query<{ n: string }>("SELECT count(*) AS n FROM lock_waiters");
    out.push(`\nswarm: ${waiters.rows[0]?.n ?? 0} waiting; held by`);
    for (const s of slots.rows)
      out.push(
        `  run ${s.run_id} since ${new Date(Number(s.since)).toISOString()} on ${s.owner}${s.registered ? "" : " (not a registered worker)"}`,
      );
  } catch (error) {
    out.push(`  (could not read more: ${String(error)})`);
  } finally {
    await reader.end();
  }
  return out.join("\n");
}

/** A worker's log line, short: when, level, message, the error's first line and the run. */
function brief(line: string): string {
  try {
    const entry = JSON.parse(line) as {
      time: number;
      level: number;
      msg?: string;
      runId?: string;
      err?: { message?: string };
    };
    const error = entry.err?.message?.split("\n")[0]?.slice(0, 160);
    return `${new Date(entry.time).toISOString()} ${entry.level} ${entry.msg ?? ""}${entry.runId ? ` run ${entry.runId}` : ""}${error ? `: ${error}` : ""}`;
  } catch {
    return line.slice(0, 300);
  }
}

function kill9(worker: Worker): void {
  appendFileSync(SIDE, `kill - ${worker.name}\n`);
  worker.process.kill("SIGKILL");
  worker.url = undefined;
  log(`kill -9 worker ${worker.name}`);
}

async function chaos(): Promise<void> {
  await sleep(4_000);
  const first = workers[0]!;
  kill9(first);
  await sleep(2_000);
  workers[0] = await startWorker(first.name);
  log(`worker ${first.name} started again`);

  await sleep(3_000);
  const paused = workers[1]!;
  paused.stopped = true;
  paused.process.kill("SIGSTOP");
  log(`SIGSTOP worker ${paused.name} (past its 10 s lease)`);
  await sleep(13_000);
  paused.process.kill("SIGCONT");
  paused.stopped = false;
  log(`SIGCONT worker ${paused.name}`);

  await sleep(2_000);
  await server!.down();
  log("PostgreSQL down");
  await sleep(3_000);
  await server!.up();
  log("PostgreSQL up");

  await sleep(3_000);
  const other = workers[2]!;
  kill9(other);
  await sleep(2_000);
  workers[2] = await startWorker(other.name);
  log(`worker ${other.name} started again`);
}

const chaosDone = chaos();
await submitAll();
// The cancelled shape's runs: cancelled once they wait (a cancel of a run anywhere goes through any worker).
for (const run of runs.filter((r) => r.shape === "cancelled"))
  await until(
    `cancel ${run.id}`,
    (w) => api(w, `/runs/${run.id}/cancel`, { method: "POST" }),
    async () => {},
  );
await chaosDone;
log("chaos over; waiting for every run to end");

// Waits while runs keep ending: a run that has not ended 2 minutes after the last one did is stuck.
const statuses = new Map<string, string>();
const deadline = Date.now() + 10 * 60_000;
let lastEnded = Date.now();
while (statuses.size < runs.length && Date.now() < deadline && Date.now() - lastEnded < 120_000) {
  for (const run of runs) {
    if (statuses.has(run.id)) continue;
    const status = await until(
      `status ${run.id}`,
      (w) => api(w, `/runs/${run.id}`),
      async (r) => ((await r.json()) as { status: string }).status,
    );
    if (["completed", "compensated", "cancelled", "failed", "needs_attention"].includes(status)) {
      statuses.set(run.id, status);
      lastEnded = Date.now();
    }
  }
  if (statuses.size < runs.length) await sleep(1_000);
}

// 1. Every run in the status its shape expects.
const wrong = runs.filter((r) => statuses.get(r.id) !== EXPECTED[r.shape]);
// 2. No completed job started again: in each run's stored history, no `action:started` of a job after its `action:completed`.
const client = new pg.Client({ connectionString: db });
await client.connect();
const events = await client.query<{ run_id: string; action: string; type: string }>(
  "SELECT run_id, action, type FROM events WHERE action IS NOT NULL ORDER BY run_id, seq",
);
await client.end();
const completed = new Set<string>();
let completedRerun = 0;
for (const e of events.rows) {
  const key = `${e.run_id} ${e.action}`;
  if (e.type === "action:completed") completed.add(key);
  else if (e.type === "action:started" && completed.has(key)) completedRerun++;
}
// 3. The swarm never had two holders: enter/leave in append order; a killed worker's holds end with it.
let inside = new Map<string, string>();
let overlaps = 0;
let orphanLeaves = 0;
for (const line of readFileSync(SIDE, "utf8").split("\n").filter(Boolean)) {
  const [kind, n, worker] = line.split(" ") as [string, string, string];
  if (kind === "kill") inside = new Map([...inside].filter(([, w]) => w !== worker));
  else if (kind === "enter") {
    if (inside.size > 0) overlaps++;
    inside.set(n, worker);
  } else if (kind === "leave" && !inside.delete(n)) orphanLeaves++;
}
// 4. Nothing held once quiet: every worker sees the swarm free.
let held = 0;
for (const worker of workers.filter((w) => w.url)) {
  const pools = await until(
    "resources",
    (w) => api(w === worker ? w : worker, "/resources"),
    async (r) => ((await r.json()) as { pools: { name: string; capacity: number; free: number }[] }).pools,
  );
  const swarm = pools.find((p) => p.name === "lock:swarm");
  if (swarm) held += swarm.capacity - swarm.free;
}

const stuckReports = wrong.length ? await describeStuck(wrong.slice(0, 3)) : "";
if (process.env.CHAOS_KEEP && wrong.length) {
  console.log(
    `${stuckReports}\nchaos: CHAOS_KEEP: workers and PostgreSQL left running (${db}); Ctrl-C ends all`,
  );
  await new Promise((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}
for (const worker of workers) worker.process.kill("SIGKILL");
await server.stop();

console.log(`
chaos: ${runs.length} runs, 3 workers, 2 kill -9, 1 SIGSTOP past the lease, 1 PostgreSQL restart, in ${((Date.now() - t0) / 1000).toFixed(0)} s
  runs not in their expected status   ${wrong.length}${
    wrong.length
      ? ` (${wrong
          .slice(0, 5)
          .map((r) => `${r.id} ${r.shape}: ${statuses.get(r.id) ?? "not ended"}`)
          .join("; ")})`
      : ""
  }
  completed jobs started again        ${completedRerun}
  swarm entered while held            ${overlaps}
  leaves of a killed worker's job     ${orphanLeaves} (its process ran on until swept: counted apart)
  lock slots held once quiet          ${held}
  side log                            ${SIDE}${stuckReports}`);
process.exit(wrong.length === 0 && completedRerun === 0 && overlaps === 0 && held === 0 ? 0 : 1);
