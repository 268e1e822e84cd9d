/**
 * `slipway resume` and `slipway retry`: continue runs in the foreground. Before a run continues, what
 * its dead process left running (job process groups) is killed, so nothing runs twice at once.
 */
import { type CompiledRun, recompile } from "../../pipeline/compile.js";
import { runSpecOf } from "../../pipeline/run-spec.js";
import { runnerCheck } from "../../server/liveness.js";
import type { ActionResponse } from "../../server/schemas.js";
import { sweepRunOrphans } from "../../shell/run-directory.js";
import { ACTIVE_STATUSES, type ExecutionRecord } from "../../storage/types.js";
import { type Client, remote, runPath, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { follow, viewMode } from "../foreground.js";
import { jobRuntime, openSession } from "../session.js";
import { dataDir, dbOption, dbPath, openStorage } from "../state.js";
import { findRun } from "./runs.js";
import { followRemote } from "./submit.js";

const options = { ...dbOption, ...serverOptions, json: { type: "boolean" } } as const;

export const resume: Command = {
  name: "resume",
  summary:
    "Continue every incomplete run (or one) in the foreground, after killing what crashed runs left running",
  usage: [
    "slipway resume [RUN] [--json] [--db PATH | --server URL [--token T]]",
    "",
    "Without RUN: every run that is running, waiting or compensating and that no live process runs.",
    "With RUN: that run, also when it needs attention (its failed undos are tried again).",
    "Exits when they have ended, with the worst of their exit codes.",
    "With --server: the server continues incomplete runs by itself; RUN is required.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(args, options, 1);
    const ref = positionals[0];
    const client = serverClient(values);
    if (client) {
      if (ref === undefined)
        throw new UsageError(
          "with a server, resume needs a RUN (the server continues incomplete runs by itself)",
        );
      return continueRemote(client, ref, "resume", values.json, io);
    }
    const db = dbPath(values.db);
    const targets = await findTargets(db, ref, io);
    if (targets === undefined) return EXIT.failed;
    if (targets.length === 0) {
      io.out(ref === undefined ? "nothing to resume\n" : "");
      return EXIT.ok;
    }
    return continueRuns(db, targets, values.json, io, async (session) => {
      for (const record of targets)
        if (record.status === "needs_attention") await session.executor.resume(record.id);
      await session.executor.recover();
    });
  },
};

export const retry: Command = {
  name: "retry",
  summary: "Continue a held run (on_failure: hold) from its failed jobs, reusing what completed",
  usage: "slipway retry RUN [--json] [--db PATH | --server URL [--token T]]",
  async run(args, io) {
    const { values, positionals } = parse(args, options, 1);
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("retry needs a run id or name");
    const client = serverClient(values);
    if (client) return continueRemote(client, ref, "retry", values.json, io);
    const db = dbPath(values.db);
    const storage = await openStorage(db);
    let record: ExecutionRecord | undefined;
    try {
      record = await findRun(storage, ref);
    } finally {
      await storage.close();
    }
    if (!record) {
      io.err(`slipway: no run "${ref}"\n`);
      return EXIT.failed;
    }
    if (record.status !== "failed") {
      io.err(
        `slipway: run ${record.id} is ${record.status}: only a held run (failed, on_failure: hold) can be retried${record.status === "needs_attention" ? `; use slipway resume ${record.id}` : ""}\n`,
      );
      return EXIT.failed;
    }
    const held = record;
    return continueRuns(db, [held], values.json, io, async (session) => {
      await session.executor.retry(held.id);
    });
  },
};

/** The runs to resume: the one named, or every incomplete pipeline run no live process owns. */
async function findTargets(
  db: string,
  ref: string | undefined,
  io: Io,
): Promise<ExecutionRecord[] | undefined> {
  const storage = await openStorage(db);
  try {
    let candidates: ExecutionRecord[];
    if (ref !== undefined) {
      const record = await findRun(storage, ref);
      if (!record) {
        io.err(`slipway: no run "${ref}"\n`);
        return undefined;
      }
      if (record.status === "failed") {
        io.err(
          `slipway: run ${record.id} is held after a failure: continue it with slipway retry ${record.id}\n`,
        );
        return undefined;
      }
      if (!ACTIVE_STATUSES.includes(record.status) && record.status !== "needs_attention") {
        io.out(`run ${record.id} has ended (${record.status}): nothing to resume\n`);
        return [];
      }
      candidates = [record];
    } else {
      candidates = await storage.listExecutions({ statuses: ACTIVE_STATUSES });
    }
    const runner = await runnerCheck(storage, dataDir(db));
    const targets: ExecutionRecord[] = [];
    for (const record of candidates) {
      if (!runSpecOf(record)) continue;
      const who = runner(record);
      if (who !== undefined) io.err(`${who}\n`);
      else targets.push(record);
    }
    return targets;
  } finally {
    await storage.close();
  }
}

/** Sweeps orphans, rebuilds each run's saga from storage, and follows the runs while `begin` continues them. */
async function continueRuns(
  db: string,
  records: readonly ExecutionRecord[],
  json: boolean | undefined,
  io: Io,
  begin: (session: Awaited<ReturnType<typeof openSession>>) => Promise<void>,
): Promise<number> {
  const runtime = jobRuntime(db);
  const compiled: { record: ExecutionRecord; run: CompiledRun }[] = [];
  let worst: number = EXIT.ok;
  for (const record of records) {
    for (const orphan of await sweepRunOrphans(dataDir(db), record.id)) {
      if (orphan.killed > 0)
        io.err(
          `run ${record.id}: killed ${orphan.killed} leftover process(es) of a crashed job (process group ${orphan.identity.pgid})\n`,
        );
    }
    try {
      compiled.push({ record, run: recompile(record, runtime) });
    } catch (error) {
      io.err(`slipway: run ${record.id} cannot be rebuilt: ${(error as Error).message}\n`);
      worst = EXIT.failed;
    }
  }
  if (compiled.length === 0) return worst;
  const ids = new Set(compiled.map((c) => c.record.id));
  const session = await openSession(
    db,
    compiled.map((c) => c.run),
    ids,
  );
  try {
    const mode = viewMode(json);
    for (const { record } of compiled)
      io.out(
        mode === "json"
          ? `${JSON.stringify({ id: record.id, name: record.runName, pipeline: record.saga, resumed: true })}\n`
          : `resuming run ${record.id}${record.runName ? ` (${record.runName})` : ""}: ${record.saga}, ${record.status}\n`,
      );
    const code = await follow(
      session,
      compiled.map((c) => ({ id: c.record.id, plan: c.run.plan })),
      mode,
      io,
      () => begin(session),
    );
    return Math.max(worst, code);
  } finally {
    await session.close();
  }
}

/** `retry`/`resume` on a server: ask it, then follow the run's new events to its end. */
async function continueRemote(
  client: Client,
  ref: string,
  action: "retry" | "resume",
  json: boolean | undefined,
  io: Io,
): Promise<number> {
  return remote(io, async () => {
    const done = await client.json<ActionResponse>("POST", runPath(ref, `/${action}`));
    io.out(
      viewMode(json) === "json"
        ? `${JSON.stringify({ id: done.id, [action === "retry" ? "retried" : "resumed"]: true })}\n`
        : `${action === "retry" ? "retrying" : "resuming"} run ${done.id}: ${done.message}\n`,
    );
    return followRemote(client, done.id, done.seq, json, io);
  });
}
