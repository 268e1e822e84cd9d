/**
 * Jobs and admission: turn what a job declares (`resources:`) into a request, wait for it while
 * telling listeners why, hold a deploy's grant through its readiness probe, and remember measured
 * peaks so `memory: auto` asks for what the job really used.
 */
import type { ActionContext } from "../definition/types.js";
import { clockTime, formatBytes } from "../format.js";
import type { Admission, Grant } from "../scheduler/admission.js";
import type { ClusterGrant, ClusterLocks } from "../scheduler/cluster-locks.js";
import { autoMemory } from "../scheduler/memory.js";
import type { Explanation, Holder, Need, Resource, Ticket } from "../scheduler/types.js";
import type { PeakStore } from "../storage/types.js";
import type { Resources } from "./model.js";
import type { Step } from "./plan.js";
import { type AdmissionTiming, type AdmissionWait, MAX_WAITS, sameWait, waitOf } from "./timing.js";

/** How many recent peaks `memory: auto` looks at. */
const AUTO_SAMPLES = 20;
/**
 * Under churn (grants and releases many times a second) the waiting are told at most this often:
 * one explanation of the whole queue per turn, each job told only what changed for it.
 */
const RETELL_MIN_MS = 200;

/**
 * A step waiting for admission: its ticket's label, where to tell it, what it was last told, and
 * since when it waits for what (recorded on its attempt once it is admitted or gives up).
 */
interface Queued {
  runId: string;
  label: string;
  ctx: ActionContext;
  need: Need;
  said: string;
  at: number;
  waits: AdmissionWait[];
  /** Waiting for its locks' slots in the database (the cluster explains it), not yet for admission here. */
  cluster: boolean;
}

/** A step admitted: its run, action and attempt, its pipeline, and its grant (how long and for what it waited). */
export interface Admitted {
  runId: string;
  action: string;
  attempt: number;
  pipeline: string;
  grant: Grant;
}

/** A pool or lock as `GET /resources` shows it (runs/schemas.ts `resourcesResponse.pools`). */
export interface PoolState {
  name: string;
  capacity: number;
  free: number;
  /** In words: `run-name job (since 16:00:01)`. */
  holders: string[];
  held: {
    run: string;
    runName: string | null;
    pipeline: string;
    job: string;
    since: number;
    amount: number;
  }[];
}

export class JobResources {
  readonly admission: Admission;
  /** Told of every admission (metrics and traces listen). */
  readonly #admitted = new Set<(admitted: Admitted) => void>();
  #peaks: PeakStore | undefined;
  /** Grants kept from a job's `run` through its readiness probe, by run id, then action. */
  readonly #kept = new Map<string, Map<string, Grant>>();
  /** Steps waiting for admission now, by `runId NUL action`. */
  readonly #queued = new Map<string, Queued>();
  #telling: NodeJS.Timeout | undefined;
  #toldAt = 0;
  /** Locks shared with the other workers of the database, when it is shared (PostgreSQL). */
  #cluster: ClusterLocks | undefined;

  constructor(admission: Admission, peaks?: PeakStore) {
    this.admission = admission;
    this.#peaks = peaks;
    // Why a job waits changes with the queue and the grants (a new holder, a new place in line):
    // each change is told, batched.
    admission.onChange(() => this.#schedule());
  }

  /** What the step's job declares, as a request: `memory: auto` from measured peaks, capped by the pool. */
  need(pipeline: string, step: Step): Need {
    const declared: Resources = step.job.resources ?? { locks: [] };
    let memoryBytes = 0;
    if (declared.memoryBytes === "auto")
      memoryBytes = autoMemory(this.#peaks?.recentPeaks(pipeline, step.job.name, AUTO_SAMPLES) ?? [], {
        maxBytes: this.admission.snapshot().capacity.memoryBytes,
      });
    else if (declared.memoryBytes !== undefined) memoryBytes = declared.memoryBytes;
    return {
      memoryBytes,
      cpu: declared.cpu ?? 0,
      diskBytes: declared.diskBytes ?? 0,
      locks: [...declared.locks],
    };
  }

  /**
   * Waits until the step's job may start. While it waits, listeners hear `queued: <why>` (which
   * resource, who holds it, its place in line) at once and again whenever that changes; cancel
   * aborts the wait.
   */
  async admit(ctx: ActionContext, pipeline: string, step: Step, key: string, priority = 0): Promise<Grant> {
    const ticket: Ticket = {
      runId: ctx.runId,
      runName: ctx.runName,
      pipeline,
      job: step.label,
      key,
      priority,
    };
    const need = this.need(pipeline, step);
    // When it asked; replaced by admission's own word (its explanation's or grant's times, in its clock).
    const at = Date.now();
    const id = `${ctx.runId}\u0000${step.action}`;
    const cluster = this.#cluster;
    // A lock the config does not declare is refused (or, without a config, exclusive) here at once.
    const shared = cluster && need.locks.every((lock) => cluster.covers(lock)) ? need.locks : [];
    const queued: Queued = {
      runId: ctx.runId,
      label: step.label,
      ctx,
      need,
      said: "",
      at,
      waits: [],
      cluster: shared.length > 0,
    };
    let grantedAt: number | null = null;
    let waited = false;
    let slots: ClusterGrant | undefined;
    this.#queued.set(id, queued);
    try {
      // First the slots of its shared locks, holding nothing here meanwhile; then the pools here.
      if (cluster && shared.length > 0) {
        slots = await cluster.acquire(this.admission.resolve(ticket), step.action, shared, ctx.signal);
        queued.cluster = false;
      }
      const pending = this.admission.acquire(ticket, need, ctx.signal);
      // Granted at once in the usual case (before the batch runs): only a request still waiting then
      // explains itself.
      this.#schedule();
      // Granted within `acquire` (the usual case) or queued: whether it was settled before this turn.
      const atOnce = await Promise.race([pending, Promise.resolve(undefined)]);
      const local = atOnce ?? (await pending);
      const grant = slots ? withSlots(local, slots, shared) : local;
      slots = undefined;
      grantedAt = grant.since;
      waited = (atOnce === undefined || grant !== local) && grant.waitedMs > 0;
      queued.at = grant.since - grant.waitedMs;
      for (const listener of this.#admitted) {
        try {
          listener({ runId: ctx.runId, action: ctx.action, attempt: ctx.attempt, pipeline, grant });
        } catch {
          // A listener's bug must not keep a job from starting.
        }
      }
      if (queued.said !== "")
        ctx.progress(`admitted after ${Math.round(grant.waitedMs / 100) / 10}s`, { queued: false });
      return grant;
    } finally {
      // Slots taken for a job that then did not start (cancelled, refused here) go back.
      slots?.release();
      this.#queued.delete(id);
      // A wait granted before the queue explained it (within a turn, or a busy 200 ms) is one of
      // no known reason.
      if (queued.waits.length === 0 && waited)
        queued.waits.push({
          at: queued.at,
          kind: "admission",
          message: "admitted before the queue said why it waited",
        });
      // Nothing at all is recorded for the usual grant at once.
      if (queued.waits.length > 0) {
        const admission: AdmissionTiming = { at: queued.at, grantedAt, waits: queued.waits };
        ctx.timing?.({ admission });
      }
    }
  }

  /** What a step waiting for admission now has waited for so far (for `show` while it waits). */
  waiting(runId: string, action: string): AdmissionTiming | undefined {
    const queued = this.#queued.get(`${runId}\u0000${action}`);
    if (queued === undefined || queued.waits.length === 0) return undefined;
    return { at: queued.at, grantedAt: null, waits: [...queued.waits] };
  }

  /** Calls `listener` with every step admitted from now on; returns the function that removes it. */
  onAdmitted(listener: (admitted: Admitted) => void): () => void {
    this.#admitted.add(listener);
    return () => this.#admitted.delete(listener);
  }

  /** Why admission holds a step back (which resource, who holds it, its place in line), if it does. */
  explain(runId: string, action: string): string | undefined {
    const queued = this.#queued.get(`${runId}\u0000${action}`);
    // Not waiting here: a job of another worker of the cluster may wait for a lock.
    if (queued === undefined || queued.cluster) return this.#cluster?.explain(runId, action)?.reason;
    return this.admission.explain().find((e) => e.ticket.runId === runId && e.ticket.job === queued.label)
      ?.reason;
  }

  /** Tells the waiting what changed for them, soon: after this turn, and not within `RETELL_MIN_MS` of the last time. */
  #schedule(): void {
    if (this.#telling !== undefined || this.#queued.size === 0) return;
    const delay = Math.max(0, this.#toldAt + RETELL_MIN_MS - Date.now());
    this.#telling = setTimeout(() => {
      this.#telling = undefined;
      this.#tell();
    }, delay);
    this.#telling.unref();
  }

  /** One explanation of the queue; each waiting step hears its own answer if it differs from the last. */
  #tell(): void {
    if (this.#queued.size === 0) return;
    this.#toldAt = Date.now();
    const answers = new Map<string, Explanation>();
    for (const explanation of this.admission.explain())
      answers.set(`${explanation.ticket.runId}\u0000${explanation.ticket.job}`, explanation);
    for (const [id, queued] of this.#queued) {
      const mine = queued.cluster
        ? this.#cluster?.explain(queued.runId, id.slice(id.indexOf("\u0000") + 1))
        : answers.get(`${queued.runId}\u0000${queued.label}`);
      if (!mine || mine.reason === queued.said) continue;
      queued.said = mine.reason;
      // The first stretch starts when it asked (the first explanation comes a turn later).
      if (queued.waits.length === 0) queued.at = mine.since;
      const wait = waitOf(mine, queued.waits.length === 0 ? queued.at : this.#toldAt);
      const last = queued.waits.at(-1);
      if (last === undefined || (!sameWait(last, wait) && queued.waits.length < MAX_WAITS))
        queued.waits.push(wait);
      queued.ctx.progress(`queued: ${mine.reason}`, {
        queued: true,
        need: describeNeed(queued.need),
        position: mine.position,
      });
    }
  }

  /** Each pool and lock: capacity, what is free, and who holds it (in words, and as data). */
  pools(): PoolState[] {
    const snapshot = this.admission.snapshot();
    const pool = (name: string, capacity: number, free: number, holders: readonly Holder[]) => ({
      name,
      capacity,
      free,
      holders: holders.map(
        (h) =>
          `${h.runName ?? h.runId} ${h.job} (since ${clockTime(h.since)}${h.worker ? ` on worker ${h.worker}` : ""})`,
      ),
      held: holders.map((h) => ({
        run: h.runId,
        runName: h.runName,
        pipeline: h.pipeline,
        job: h.job,
        since: h.since,
        amount: h.amount,
        ...(h.worker !== undefined && { worker: h.worker }),
      })),
    });
    const pools = [
      pool("memory", snapshot.capacity.memoryBytes, snapshot.free.memoryBytes, snapshot.holders.memory),
      pool("cpu", snapshot.capacity.cpu, snapshot.free.cpu, snapshot.holders.cpu),
      pool("disk", snapshot.capacity.diskBytes, snapshot.free.diskBytes, snapshot.holders.disk),
    ];
    for (const [name, capacity] of Object.entries(snapshot.capacity.locks)) {
      // A shared lock's holders are the cluster's, each on its worker.
      const shared = this.#cluster?.covers(name) ? this.#cluster.holders(name) : undefined;
      pools.push(
        shared
          ? pool(`lock:${name}`, capacity, Math.max(0, capacity - shared.length), shared)
          : pool(
              `lock:${name}`,
              capacity,
              snapshot.free.locks[name] ?? 0,
              snapshot.holders.locks[name] ?? [],
            ),
      );
    }
    return pools;
  }

  /**
   * Takes the slots of declared locks in the database shared with the other workers (once the
   * process has its executor): a job's locks are granted there before its pools here.
   */
  useClusterLocks(cluster: ClusterLocks): void {
    this.#cluster = cluster;
    cluster.onChange(() => this.#schedule());
  }

  /** Where measured peaks are kept, once the process has its storage open. */
  usePeaks(peaks: PeakStore): void {
    this.#peaks = peaks;
  }

  /** Keeps a grant for the step's readiness probe, which runs as the next step. */
  hold(runId: string, action: string, grant: Grant): void {
    let run = this.#kept.get(runId);
    if (!run) {
      run = new Map();
      this.#kept.set(runId, run);
    }
    run.get(action)?.release();
    run.set(action, grant);
  }

  /** The grant held for a probe, if its run step ran in this process (after a restart it did not). */
  take(runId: string, action: string): Grant | undefined {
    const run = this.#kept.get(runId);
    const grant = run?.get(action);
    run?.delete(action);
    if (run?.size === 0) this.#kept.delete(runId);
    return grant;
  }

  /** Releases whatever a run still holds (it ended, or was cancelled between a job and its probe). */
  releaseRun(runId: string): void {
    for (const grant of this.#kept.get(runId)?.values() ?? []) grant.release();
    this.#kept.delete(runId);
  }

  recordPeak(pipeline: string, job: string, peakBytes: number): void {
    if (peakBytes > 0) this.#peaks?.recordPeak(pipeline, job, peakBytes, Date.now());
  }
}

function describeNeed(need: Need): string {
  const parts: string[] = [];
  if (need.memoryBytes > 0) parts.push(`memory ${formatBytes(need.memoryBytes)}`);
  if (need.cpu > 0) parts.push(`cpu ${need.cpu}`);
  if (need.diskBytes > 0) parts.push(`disk ${formatBytes(need.diskBytes)}`);
  for (const lock of need.locks) parts.push(`lock ${lock}`);
  return parts.join(", ");
}

/** A grant here together with the slots of its shared locks: released together. */
function withSlots(local: Grant, slots: ClusterGrant, locks: readonly string[]): Grant {
  const waitedFor: Resource[] =
    slots.waitedMs > 0
      ? [
          ...locks.map((lock) => `lock:${lock}` as const),
          ...local.waitedFor.filter((r) => !r.startsWith("lock:")),
        ]
      : [...local.waitedFor];
  return {
    ticket: local.ticket,
    need: local.need,
    since: local.since,
    waitedMs: local.waitedMs + slots.waitedMs,
    waitedFor,
    release: () => {
      local.release();
      slots.release();
    },
  };
}
