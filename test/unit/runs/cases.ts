/**
 * The runs service's shared cases: every operation of `RunService`, run against each way of reaching
 * it (in-process, and over HTTP) the way the storage conformance suite runs against each backend.
 * Jobs are real shell processes; every wait is for a condition, bounded.
 */
import { existsSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../../src/engine/events.js";
import type { RunChange } from "../../../src/runs/changes.js";
import { LocalRuns } from "../../../src/runs/local.js";
import type { RunService } from "../../../src/runs/service.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import { eventually, tempDir, within } from "../../helpers.js";

export interface Transport {
  name: string;
  /** The service under test on the database `db`; closed by the suite. */
  open(db: string): Promise<RunService>;
}

const PIPELINES = {
  release: `name: release
jobs:
  build:
    run: echo "digest=sha256:1f2e" >> "$SLIPWAY_OUTPUT"; echo building
  publish:
    needs: [build]
    run: echo "publishing \${{ needs.build.outputs.digest }}"; echo published
`,
  inputs: `name: tagged
inputs:
  tag: { type: string, default: latest }
jobs:
  tag:
    run: echo "tag \${{ inputs.tag }}"
`,
  gated: `name: gated
jobs:
  prepare:
    run: echo prepared >> trace
    undo: echo "undo prepare" >> trace
  approve:
    needs: [prepare]
    wait: { signal: go }
  ship:
    needs: [approve]
    run: echo shipped >> trace
`,
  locked: `name: locked
inputs:
  n: { type: string }
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: while [ ! -e "release-$INPUT_N" ]; do sleep 0.05; done
`,
  sized: `name: sized
jobs:
  compile:
    resources: { memory: auto, cpu: 1 }
    run: echo compiled
`,
  held: `name: held
on_failure: hold
jobs:
  migrate:
    run: test -e fixed || { echo "schema lock held" >&2; exit 1; }
  release:
    needs: [migrate]
    run: echo released
`,
  triggered: `name: triggered
run-name: ci-\${{ event.branch }}-\${{ event.sha }}
on:
  push: { branches: [main] }
jobs:
  build:
    run: echo "built \${{ event.kind }} \${{ event.sha }} in $PWD"
`,
} as const;

interface Fixture {
  runs: RunService;
  dir: string;
  db: string;
  file(name: keyof typeof PIPELINES): { file: string; source: string };
  /** Every event of the run from the start (or after `after`), to its end. */
  events(id: string, after?: number): Promise<RunEvent[]>;
  /** Waits until the run's status is one of `statuses`. */
  status(id: string, ...statuses: string[]): Promise<void>;
}

/** The error code of a refusal, from either transport. */
function codeOf(error: unknown): string | undefined {
  return (error as { code?: unknown }).code as string | undefined;
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: codeOf(error), message: (error as Error).message };
  }
  throw new Error("expected the service to refuse");
}

export function runServiceCases(transport: Transport): void {
  async function fixture(): Promise<Fixture & { [Symbol.asyncDispose](): Promise<void> }> {
    const dir = tempDir();
    const db = join(dir, "state", "slipway.db");
    const runs = await transport.open(db);
    const fixture: Fixture = {
      runs,
      dir,
      db,
      file(name) {
        const file = join(dir, `${name}.yml`);
        writeFileSync(file, PIPELINES[name]);
        return { file, source: PIPELINES[name] };
      },
      async events(id, after) {
        const seen: RunEvent[] = [];
        const stream = await runs.events(id, after === undefined ? {} : { after });
        await within(
          (async () => {
            for await (const event of stream) seen.push(event);
          })(),
          `the events of run ${id} to its end`,
          20_000,
        );
        return seen;
      },
      async status(id, ...statuses) {
        await eventually(
          async () => statuses.includes((await runs.show(id)).status),
          `run ${id} to be ${statuses.join(" or ")}`,
          20_000,
        );
      },
    };
    return { ...fixture, [Symbol.asyncDispose]: () => runs.close() };
  }

  describe(`runs service (${transport.name})`, () => {
    it("submits a pipeline, streams its events to the end, shows, lists and logs it", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("release"), { name: "release-main-1" });
      expect(run).toMatchObject({ name: "release-main-1", pipeline: "release", jobs: 2 });
      const events = await f.events(run.id);
      expect(events.at(-1)?.type).toBe("run:completed");
      const seqs = events.flatMap((e) => (e.seq === undefined ? [] : [e.seq]));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

      const shown = await f.runs.show("release-main-1");
      expect(shown).toMatchObject({ id: run.id, status: "completed", name: "release-main-1" });
      expect(shown.steps.map((s) => [s.job, s.status])).toEqual([
        ["build", "completed"],
        ["publish", "completed"],
      ]);
      expect(shown.plan?.steps.map((s) => s.action)).toEqual(["build", "publish"]);
      // Where the time went: publish ended last, after build, which it needs.
      const path = shown.criticalPath;
      expect(path?.steps.map((s) => s.job)).toEqual(["build", "publish"]);
      // It covers the whole run: each job from when it was due (queued) to its end, then the run's end.
      expect(path?.totalMs).toBe(shown.endedAt! - shown.createdAt);
      expect(path?.segments.reduce((sum, s) => sum + s.endedAt! - s.startedAt, 0)).toBe(path?.totalMs);
      const [built, published] = shown.steps;
      expect(path?.steps[0]?.ms).toBeGreaterThanOrEqual(built!.endedAt! - built!.startedAt!);
      expect(path?.steps[1]?.ms).toBeGreaterThanOrEqual(published!.endedAt! - published!.startedAt!);
      // Every job's phases, as the waterfall draws them.
      expect(shown.timings?.map((t) => [t.job, t.phases.at(-1)?.phase])).toEqual([
        ["build", "running"],
        ["publish", "running"],
      ]);
      expect(shown.waiting).toEqual([]);
      expect((await f.runs.list()).map((r) => r.id)).toEqual([run.id]);

      let text = "";
      for await (const chunk of await f.runs.logs(run.id)) text += chunk;
      expect(text).toContain("building");
      expect(text).toContain("publishing sha256:1f2e");
      let publish = "";
      for await (const chunk of await f.runs.logs(run.id, { job: "publish" })) publish += chunk;
      expect(publish).toContain("publishing");
      expect(publish).not.toContain("building");
      // A range after the run wrote anything has no lines; following an ended run ends.
      let later = "";
      const future = Date.now() + 60_000;
      for await (const chunk of await f.runs.logs(run.id, { since: future, follow: true })) later += chunk;
      expect(later).toBe("");
      expect((await refusal(f.runs.logs(run.id, { job: "nope" }))).code).toBe("not_found");
      // The end of each file, from a whole line, its header saying where it starts: here a cut two
      // bytes into the line before the last one starts at the last one.
      const last = publish.split("\n").filter(Boolean).at(-1)!;
      expect(last).toMatch(/ out published$/);
      let tail = "";
      const options = { job: "publish", tail: Buffer.byteLength(last) + 3 };
      for await (const chunk of await f.runs.logs(run.id, options)) tail += chunk;
      expect(tail).toMatch(/^==> publish \(attempt 1\) from byte \d+ <==\n/);
      expect(tail.split("\n").filter(Boolean).slice(1)).toEqual([last]);
    });

    it("runs submissions that differ only in their inputs, each job with its own", async () => {
      await using f = await fixture();
      const source = f.file("inputs");
      const runs = await Promise.all(
        ["v1", "v2", "v3"].map((tag) => f.runs.submit(source, { inputs: { tag } })),
      );
      for (const [i, run] of runs.entries()) {
        await f.status(run.id, "completed");
        let text = "";
        for await (const chunk of await f.runs.logs(run.id)) text += chunk;
        expect(text).toContain(`tag v${i + 1}`);
        expect(text).not.toMatch(new RegExp(`tag v[^${i + 1}]`));
      }
    });

    it("resumes a stream of events after an event id", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("release"));
      const all = await f.events(run.id);
      const middle = all.filter((e) => e.seq !== undefined)[2]!;
      const rest = await f.events(run.id, middle.seq);
      expect(rest.length).toBeGreaterThan(0);
      expect(rest.every((e) => e.seq === undefined || e.seq > middle.seq!)).toBe(true);
      expect(rest.at(-1)?.type).toBe("run:completed");
    });

    it("tells a listener of runs created and changing status and of the queue, and resumes after a cursor", async () => {
      await using f = await fixture();
      const aborted = new AbortController();
      const seen: RunChange[] = [];
      const stream = await f.runs.changes({ signal: aborted.signal });
      let run: { id: string } | undefined;
      const reading = (async () => {
        for await (const change of stream) {
          seen.push(change);
          if (change.kind === "run" && change.run === run?.id && change.status === "completed") return;
        }
      })();
      run = await f.runs.submit(f.file("release"));
      await within(reading, "the notices of a run to its end", 20_000);
      aborted.abort();
      const mine = seen.filter((c) => c.kind !== "reset" && c.run === run!.id);
      expect(mine.filter((c) => c.kind === "run").map((c) => c.kind === "run" && c.status)).toEqual([
        "running",
        "completed",
      ]);
      expect(mine.every((c) => c.kind === "reset" || c.pipeline === "release")).toBe(true);
      const jobs = new Set(mine.map((c) => c.kind === "queue" && c.job).filter(Boolean));
      expect(jobs).toEqual(new Set(["build", "publish"]));

      // After a cursor: the notices that followed it, the same ones.
      const again = new AbortController();
      const replayed: RunChange[] = [];
      for await (const change of await f.runs.changes({ after: mine[0]!.cursor, signal: again.signal })) {
        replayed.push(change);
        if (change.cursor === mine.at(-1)!.cursor) again.abort();
      }
      expect(replayed.map((c) => c.cursor)).toEqual(mine.slice(1).map((c) => c.cursor));
      // Another process's cursor (a restarted server's): re-read everything.
      const other = new AbortController();
      for await (const change of await f.runs.changes({ after: "zz0.3", signal: other.signal })) {
        expect(change.kind).toBe("reset");
        other.abort();
      }
      expect(codeOf(await f.runs.changes({ after: "garbage" }).catch((e: unknown) => e))).toBe(
        "invalid_input",
      );
    });

    it("makes a submission with a key safe to repeat, and refuses the key for another request", async () => {
      await using f = await fixture();
      const source = f.file("inputs");
      const first = await f.runs.submit(source, { key: "ticket-7", inputs: { tag: "v1" } });
      const again = await f.runs.submit(source, { key: "ticket-7", inputs: { tag: "v1" } });
      expect(again.id).toBe(first.id);
      await f.status(first.id, "completed");
      const other = await refusal(f.runs.submit(source, { key: "ticket-7", inputs: { tag: "v2" } }));
      expect(other.code).toBe("idempotency_conflict");
      expect(other.message).toContain("ticket-7");
      expect((await f.runs.list({ key: "ticket-7" })).map((r) => r.id)).toEqual([first.id]);
      expect(await f.runs.list()).toHaveLength(1);
    });

    it("lists by pipeline, name, status and text, everything or page by page", async () => {
      await using f = await fixture();
      const ids: string[] = [];
      for (const [i, name] of ["release", "inputs", "release"].entries()) {
        const run = await f.runs.submit(f.file(name as keyof typeof PIPELINES), { name: `run-${i}` });
        ids.push(run.id);
        await f.status(run.id, "completed");
      }
      expect((await f.runs.list()).map((r) => r.id)).toEqual([...ids].reverse());
      expect((await f.runs.list({ pipeline: "release" })).map((r) => r.id)).toEqual([ids[2], ids[0]]);
      expect((await f.runs.list({ name: "run-1" })).map((r) => r.id)).toEqual([ids[1]]);
      expect(await f.runs.list({ statuses: ["waiting"] })).toEqual([]);
      // Text in the id, the run name or the pipeline, in any case: the dashboard's search box.
      expect((await f.runs.list({ text: "RUN-1" })).map((r) => r.id)).toEqual([ids[1]]);
      expect((await f.runs.list({ text: "eleas" })).map((r) => r.id)).toEqual([ids[2], ids[0]]);
      const firstPage = await f.runs.page({ limit: 1, text: "release" });
      expect(firstPage.runs.map((r) => r.id)).toEqual([ids[2]]);
      const secondPage = await f.runs.page({ limit: 1, text: "RELEASE", cursor: firstPage.next! });
      expect(secondPage.runs.map((r) => r.id)).toEqual([ids[0]]);
      expect(secondPage.next).toBeUndefined();
      expect((await f.runs.page({ limit: 5, text: "e", statuses: ["completed"] })).runs).toHaveLength(3);
      expect((await f.runs.list({ text: ids[1]!.slice(-6) })).map((r) => r.id)).toEqual([ids[1]]);
      // By concurrency key (the pipeline's name when it declares none) and by what started it.
      expect((await f.runs.list({ concurrency: "release" })).map((r) => r.id)).toEqual([ids[2], ids[0]]);
      expect((await f.runs.list({ trigger: "manual" })).map((r) => r.id)).toEqual([...ids].reverse());
      expect(await f.runs.list({ trigger: "push" })).toEqual([]);
      expect((await f.runs.page({ limit: 1, concurrency: "release" })).runs.map((r) => r.id)).toEqual([
        ids[2],
      ]);
      expect((await f.runs.list())[0]).toMatchObject({ trigger: "manual", concurrencyKey: "release" });

      const paged: string[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 5; pages++) {
        const page = await f.runs.page({ limit: 2, ...(cursor !== undefined && { cursor }) });
        paged.push(...page.runs.map((r) => r.id));
        cursor = page.next;
        if (cursor === undefined) break;
      }
      expect(paged).toEqual([...ids].reverse());
      expect((await refusal(f.runs.page({ limit: 2, cursor: "garbage" }))).code).toBe("invalid_input");
    });

    it("refuses a run name past MAX_RUN_NAME, naming the limit, and starts nothing", async () => {
      await using f = await fixture();
      const error = await f.runs
        .submit(f.file("release"), { name: "n".repeat(201) })
        .catch((e: unknown) => e);
      expect(codeOf(error)).toBe("invalid_input");
      // In process and over HTTP alike, the problem names the limit.
      expect((error as { problems: string[] }).problems).toEqual([
        "the run name is 201 characters, over the limit of 200 characters in a run name (MAX_RUN_NAME, a fixed limit: see Limits in docs/pipelines.md)",
      ]);
      expect(await f.runs.list()).toEqual([]);
      const fits = await f.runs.submit(f.file("release"), { name: "n".repeat(200) });
      expect(fits.name).toHaveLength(200);
    });

    it("carries what started a run (event, workspace), as a trigger hands them in", async () => {
      await using f = await fixture();
      // On its `on:` triggers only: by hand, it is refused.
      expect(codeOf(await f.runs.submit(f.file("triggered")).catch((e: unknown) => e))).toBe("invalid_input");
      const workspace = tempDir();
      const event = { kind: "push", source: "app", sha: "1a2b3c", branch: "main", ref: "refs/heads/main" };
      const run = await f.runs.submit(f.file("triggered"), { event, workspace, untrusted: true });
      expect(run.name).toBe("ci-main-1a2b3c");
      await f.status(run.id, "completed");
      expect((await f.runs.show(run.id)).spec).toMatchObject({ event, workspace });
      let text = "";
      for await (const chunk of await f.runs.logs(run.id)) text += chunk;
      expect(text).toContain(`built push 1a2b3c in ${workspace}`);
    });

    it("names runs from a pattern: inputs filled in, {attempt} counted, unknown placeholders refused", async () => {
      await using f = await fixture();
      const pattern = "tag-{tag}-{attempt}";
      const first = await f.runs.submit(f.file("inputs"), { name: pattern });
      expect(first.name).toBe("tag-latest-1");
      // At once: each gets its own attempt.
      const [second, third] = await Promise.all([
        f.runs.submit(f.file("inputs"), { name: pattern }),
        f.runs.submit(f.file("inputs"), { name: pattern }),
      ]);
      expect([second!.name, third!.name].sort()).toEqual(["tag-latest-2", "tag-latest-3"]);
      expect((await f.runs.submit(f.file("inputs"), { name: pattern, inputs: { tag: "v1" } })).name).toBe(
        "tag-v1-1",
      );
      await f.status(first.id, "completed");
      expect((await f.runs.show("tag-latest-1")).id).toBe(first.id);

      const error = await f.runs
        .submit(f.file("inputs"), { name: "{tagg}-{attempt}" })
        .catch((e: unknown) => e);
      expect(codeOf(error)).toBe("invalid_input");
      expect((error as { problems: string[] }).problems).toEqual([
        expect.stringMatching(/^unknown placeholder `\{tagg\}` in the run name: .*did you mean `\{tag\}`/),
      ]);
      expect(await f.runs.list({ name: "{tagg}-1" })).toEqual([]);
    });

    it("holds a wait job until a signal, says so in the queue, and refuses a signal to an ended run", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("gated"));
      await f.status(run.id, "waiting");
      const queued = (await f.runs.queue()).filter((q) => q.run === run.id);
      expect(queued.find((q) => q.job === "approve")).toMatchObject({ reason: "signal" });
      expect(queued.find((q) => q.job === "ship")).toMatchObject({ reason: "needs" });
      // show gives the queue's answer for every job that is not running, and the path so far.
      const shown = await f.runs.show(run.id);
      expect(shown.waiting).toEqual(
        queued.map(({ run: _run, runName: _name, pipeline: _pipeline, ...job }) => job),
      );
      expect(shown.waiting).toEqual([
        expect.objectContaining({ job: "approve", state: "waiting", reason: "signal" }),
        expect.objectContaining({ job: "ship", state: "pending", reason: "needs", message: "after approve" }),
      ]);
      expect(shown.waiting[0]?.message).toContain('waiting for signal "go"');
      expect(shown.criticalPath?.steps.map((s) => s.job)).toEqual(["prepare"]);
      const sent = await f.runs.signal(run.id, "go", { by: "ops" });
      expect(sent).toMatchObject({ id: run.id, signal: "go" });
      await f.status(run.id, "completed");
      expect((await f.runs.queue()).filter((q) => q.run === run.id)).toEqual([]);
      expect((await refusal(f.runs.signal(run.id, "go"))).code).toBe("conflict");
    });

    it("cancels a waiting run: what completed is undone", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("gated"));
      await f.status(run.id, "waiting");
      const cancelled = await f.runs.cancel(run.id, "operator");
      expect(cancelled.id).toBe(run.id);
      await f.status(run.id, "cancelled");
      const shown = await f.runs.show(run.id);
      expect(shown.cause).toEqual({ kind: "cancel", reason: "operator" });
      expect(shown.steps.find((s) => s.job === "prepare")?.status).toBe("undone");
      expect((await refusal(f.runs.cancel(run.id))).code).toBe("conflict");
    });

    it("retries a held run from its failed job; resume points a held run to retry", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("held"));
      await f.status(run.id, "failed");
      const wrongVerb = await refusal(f.runs.resume(run.id));
      expect(wrongVerb.code).toBe("conflict");
      expect(wrongVerb.message).toContain(`slipway retry ${run.id}`);
      writeFileSync(join(f.dir, "fixed"), "");
      const retried = await f.runs.retry(run.id);
      expect(retried).toMatchObject({ id: run.id, status: "running" });
      const after = await f.events(run.id, retried.seq);
      expect(after.at(-1)?.type).toBe("run:completed");
      const shown = await f.runs.show(run.id);
      expect(shown.steps.find((s) => s.job === "migrate")?.attempt).toBe(2);
      expect((await refusal(f.runs.retry(run.id))).message).toContain("only a held run");
    });

    it("resumes an incomplete run that no live process runs", async () => {
      await using f = await fixture();
      // Another process started the run and went away while it waited.
      const other = await LocalRuns.open({ db: f.db, adopt: "asked", pollIntervalMs: 50 });
      const run = await other.submit(f.file("gated"));
      await eventually(async () => (await other.show(run.id)).status === "waiting", "the wait", 20_000);
      await other.close();

      const resumed = await f.runs.resume(run.id);
      expect(resumed.id).toBe(run.id);
      await f.runs.signal(run.id, "go");
      await f.status(run.id, "completed");
      expect((await refusal(f.runs.resume(run.id))).message).toContain("nothing to resume");
      expect((await refusal(f.runs.resume("no-such-run"))).code).toBe("not_found");
    });

    it("prunes ended runs that ended before a time, with their logs, and keeps the rest", async () => {
      await using f = await fixture();
      const done = await f.runs.submit(f.file("release"));
      await f.status(done.id, "completed");
      const waiting = await f.runs.submit(f.file("gated"));
      await f.status(waiting.id, "waiting");
      expect((await f.runs.prune({ endedBefore: 0 })).removed).toEqual([]);
      const logs = join(dirname(f.db), "logs", done.id);
      expect(existsSync(logs)).toBe(true);
      const pruned = await f.runs.prune({ endedBefore: Date.now() + 60_000 });
      expect(pruned.removed).toEqual([done.id]);
      expect(existsSync(logs)).toBe(false);
      expect((await refusal(f.runs.show(done.id))).code).toBe("not_found");
      expect((await f.runs.list()).map((r) => r.id)).toEqual([waiting.id]);
      await f.runs.cancel(waiting.id);
      await f.status(waiting.id, "cancelled");
    });

    it("tells a follower at once why a started job waits for admission", async () => {
      await using f = await fixture();
      const source = f.file("locked");
      const first = await f.runs.submit(source, { inputs: { n: "1" } });
      await eventually(
        async () => (await f.runs.show(first.id)).steps.some((s) => s.status === "running"),
        "the first deploy to hold the lock",
        20_000,
      );
      const second = await f.runs.submit(source, { inputs: { n: "2" } });
      await eventually(
        async () => (await f.runs.show(second.id)).steps.some((s) => s.queued),
        "the second deploy to queue on the lock",
        20_000,
      );
      // Admission says why once, and again only when that changes: a follower who comes after it
      // said so (the first one here) still hears why at once.
      const queuedEvent = async (): Promise<RunEvent | undefined> => {
        const controller = new AbortController();
        const stream = await f.runs.events(second.id, { signal: controller.signal });
        try {
          return await within(
            (async () => {
              for await (const event of stream)
                if (event.type === "action:progress" && event.data?.queued === true) return event;
              return undefined;
            })(),
            "the queued explanation",
            20_000,
          );
        } finally {
          controller.abort();
        }
      };
      expect(await queuedEvent()).toBeDefined();
      const told = await queuedEvent();
      expect(told?.action).toBe("deploy");
      expect(String(told?.data?.message)).toMatch(/^queued: waits for lock swarm/);
      for (const n of ["1", "2"]) writeFileSync(join(f.dir, `release-${n}`), "");
      await f.status(first.id, "completed");
      await f.status(second.id, "completed");
    });

    it("tells a follower again when why its job waits changes: a new holder, a new place in line", async () => {
      await using f = await fixture();
      const source = f.file("locked");
      const first = await f.runs.submit(source, { inputs: { n: "1" } });
      await eventually(
        async () => (await f.runs.show(first.id)).steps.some((s) => s.status === "running"),
        "the first deploy to hold the lock",
        20_000,
      );
      const second = await f.runs.submit(source, { inputs: { n: "2" } });
      await eventually(
        async () => (await f.runs.show(second.id)).steps.some((s) => s.queued),
        "the second deploy to queue on the lock",
        20_000,
      );
      const third = await f.runs.submit(source, { inputs: { n: "3" } });
      const controller = new AbortController();
      const stream = (await f.runs.events(third.id, { signal: controller.signal }))[Symbol.asyncIterator]();
      // The next thing the third run's follower hears about admission.
      const nextQueued = () =>
        within(
          (async () => {
            for (;;) {
              const { value, done } = await stream.next();
              if (done) throw new Error("the stream ended");
              if (value.type === "action:progress" && value.data?.queued === true)
                return String(value.data.message);
            }
          })(),
          "an explanation",
          20_000,
        );
      try {
        const before = await nextQueued();
        expect(before).toMatch(/^queued: waits .*lock swarm.*; 2nd in line$/);
        expect(before).toContain(first.id);
        writeFileSync(join(f.dir, "release-1"), "");
        // The first run ends; the second holds the lock now, and the third is first in line.
        const after = await nextQueued();
        expect(after).toMatch(
          new RegExp(
            `^queued: waits for lock swarm \\(1 of 1 held by run ${second.id} job deploy since .*\\); 1st in line$`,
          ),
        );
      } finally {
        controller.abort();
      }
      for (const n of ["2", "3"]) writeFileSync(join(f.dir, `release-${n}`), "");
      for (const run of [first, second, third]) await f.status(run.id, "completed");
    });

    it("lists the workers with what each holds, the lock's holder, and per job its declaration against its measured peaks", async () => {
      await using f = await fixture();
      const run = await f.runs.submit(f.file("locked"), { inputs: { n: "1" } });
      // deploy holds swarm until the test writes release-1: its executor owns the run and runs the job.
      const holding = await eventually(
        async () =>
          (await f.runs.workers()).workers.find((e) =>
            e.runs.some((r) => r.id === run.id && r.jobs.includes("deploy")),
          ),
        "the worker to hold the run and its running deploy",
        20_000,
      );
      const { workers, leaseMs } = await f.runs.workers();
      expect(workers).toHaveLength(1);
      // No `max_runs:`: no limit, so no figure of room either.
      expect(holding).toMatchObject({
        self: true,
        alive: true,
        host: hostname(),
        pid: process.pid,
        maxRuns: null,
        free: null,
      });
      expect(holding.runs).toEqual([
        { id: run.id, name: null, pipeline: "locked", status: "running", jobs: ["deploy"] },
      ]);
      expect(holding.heartbeatAgeMs).toBeLessThan(leaseMs);
      expect(holding.heartbeatAt).toBeGreaterThanOrEqual(holding.startedAt);
      const swarm = (await f.runs.resources()).pools.find((p) => p.name === "lock:swarm");
      expect(swarm).toMatchObject({ capacity: 1, free: 0 });
      expect(swarm?.held).toEqual([
        expect.objectContaining({ run: run.id, runName: null, pipeline: "locked", job: "deploy", amount: 1 }),
      ]);
      writeFileSync(join(f.dir, "release-1"), "");
      await f.status(run.id, "completed");
      await eventually(
        async () => (await f.runs.workers()).workers[0]?.runs.length === 0,
        "the ended run to be released",
      );

      // A peak as a job's process tree is measured, recorded in the same database.
      const storage = new SqliteStorage({ path: f.db });
      await storage.init();
      storage.peaks().recordPeak("locked", "deploy", 512 * 2 ** 20, Date.now() + 1000);
      // `memory: auto` asks for the p95 of the recent peaks plus 20 %.
      const sized = await f.runs.submit(f.file("sized"));
      await f.status(sized.id, "completed");
      storage.peaks().recordPeak("sized", "compile", 400 * 2 ** 20, Date.now() + 1000);
      await storage.close();
      const jobs = (await f.runs.resources()).jobs ?? [];
      const deploy = jobs.find((j) => j.pipeline === "locked" && j.job === "deploy");
      expect(deploy).toMatchObject({
        declared: { locks: ["swarm"] },
        requestMemory: null,
        run: run.id,
        measured: { max: 512 * 2 ** 20, last: 512 * 2 ** 20 },
      });
      expect(deploy?.measured?.samples).toBeGreaterThanOrEqual(1);
      const compile = jobs.find((j) => j.pipeline === "sized" && j.job === "compile");
      expect(compile).toMatchObject({
        declared: { memory: "auto", cpu: 1, locks: [] },
        run: sized.id,
        measured: { max: 400 * 2 ** 20 },
      });
      // 400 MiB and 20 % more, or more when an own measured peak of compile's was higher.
      expect(compile?.requestMemory).toBeGreaterThanOrEqual(480 * 2 ** 20);
    });

    it("shows the resource pools and what runs now", async () => {
      await using f = await fixture();
      const resources = await f.runs.resources();
      expect(resources.pools.map((p) => p.name)).toEqual(expect.arrayContaining(["memory", "cpu"]));
      expect(resources.running).toEqual([]);
      expect(resources.jobs).toEqual([]);
      expect((await refusal(f.runs.show("nothing-here"))).code).toBe("not_found");
    });
  });
}
