/**
 * Triggers inside `slipway serve`: each source polled on its own timer by the one worker of a cluster
 * that holds its lease (leases.ts), schedules checked at every minute, ended runs' workspaces swept;
 * everything on an injectable clock, stopped cleanly (timers cleared, work under way awaited, leases
 * given up) when the server stops.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Clock, type ClockTimer, systemClock } from "../clock.js";
import { latestFiring, minuteOf, parseCron } from "../cron.js";
import { DEFAULT_LEASE_MS } from "../engine/liveness.js";
import type { Json } from "../json.js";
import { parsePipeline } from "../pipeline/parse.js";
import type { RunService } from "../runs/service.js";
import type { Launcher } from "../shell/launcher.js";
import type { TriggerStore } from "../storage/triggers.js";
import type { ExecutorRecord } from "../storage/types.js";
import { readSecret, type SourceConfig } from "./config.js";
import { Dispatcher, shaOf } from "./dispatcher.js";
import { eventKey, type TriggerEvent } from "./event.js";
import { createForge } from "./forges/create.js";
import type { Forge } from "./forges/forge.js";
import { remoteHead } from "./git.js";
import { DEFAULT_TRIGGER_HEARTBEAT_MS, sourceLease, TriggerLeases } from "./leases.js";
import { pollSource } from "./poller.js";
import type { HookDeps } from "./receiver.js";
import { Reporter } from "./reporter.js";
import type { TriggersResponse, TriggerView } from "./schemas.js";
import { Workspaces } from "./workspaces.js";

export interface TriggerServiceOptions {
  runs: RunService;
  store: TriggerStore;
  sources: readonly SourceConfig[];
  /** `serve --pipeline` files by name: their `on.schedule` fires too (without a repository). */
  registered?: ReadonlyMap<string, string> | undefined;
  dataDir: string;
  clock?: Clock | undefined;
  random?: (() => number) | undefined;
  /** How often ended runs' workspaces are looked at. Default 2 s. */
  sweepMs?: number | undefined;
  /** The link to a run for reports to forges (from `public_url:`); absent: reports carry no link. */
  runUrl?: ((id: string) => string | undefined) | undefined;
  /** How often reports to forges are worked on (runs looked at, failed calls retried). Default 2 s. */
  reportMs?: number | undefined;
  log?: ((message: string) => void) | undefined;
  /** The server's launcher process: git is started there, off the event loop (git.ts). */
  launcher?: Launcher | undefined;
  /**
   * This worker's name in the leases that make one worker of a cluster poll each source: the
   * executor's id. Default a random one.
   */
  owner?: string | undefined;
  /** How long a source's lease lasts unrenewed. Default 10 s (the executors' lease). */
  leaseMs?: number | undefined;
  /** How often the lease of a source is renewed, or tried by a worker without it. Default 2 s. */
  heartbeatMs?: number | undefined;
  /** The registered workers (`Storage.listExecutors`): a dead holder's leases are taken at once. */
  executors?: (() => Promise<ExecutorRecord[]>) | undefined;
}

/** One `on.schedule` entry of one pipeline. */
export interface Schedule {
  id: string;
  source: string;
  pipeline: string;
  cron: string;
  timeZone: string;
}

export class TriggerService implements TriggerView {
  readonly dispatcher: Dispatcher;
  readonly workspaces: Workspaces;
  readonly reporter: Reporter;
  readonly leases: TriggerLeases;
  readonly #options: TriggerServiceOptions;
  readonly #clock: Clock;
  readonly #timers = new Set<ClockTimer>();
  readonly #busy = new Set<Promise<unknown>>();
  /** Each forge source's REST client, kept so its conditional requests (ETags) last between polls. */
  readonly #forges = new Map<string, Forge>();
  /** Schedules of each source's pipelines in its repository, and the commit they were read at. */
  readonly #inRepository = new Map<string, { sha: string; schedules: Schedule[] }>();
  /** When each source held here is polled next (absent: at once, as when its lease was just taken). */
  readonly #nextPoll = new Map<string, number>();
  #stopped = false;

  constructor(options: TriggerServiceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.leases = new TriggerLeases({
      store: options.store,
      owner: options.owner ?? `triggers:${process.pid}:${randomBytes(4).toString("hex")}`,
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      clock: this.#clock,
      executors: options.executors,
      log: options.log,
    });
    this.workspaces = new Workspaces({
      dataDir: options.dataDir,
      store: options.store,
      clock: this.#clock,
      sources: options.sources,
      launcher: options.launcher,
    });
    for (const source of options.sources) {
      if (source.kind === "git") continue;
      // Read once: the client keeps its ETags for the server's life (git reads the token at each poll).
      const token = tokenOf(source);
      try {
        const forge = createForge(source.kind, {
          url: source.url,
          ...(source.api !== undefined && { api: source.api }),
          ...(token !== undefined && { token }),
        });
        this.#forges.set(source.name, forge);
      } catch (error) {
        // Not a forge URL (a mirror, a path): polled with git alone.
        options.log?.(`source ${source.name}: no ${source.kind} API: ${(error as Error).message}`);
      }
    }
    this.reporter = new Reporter({
      runs: options.runs,
      store: options.store,
      sources: options.sources,
      clock: this.#clock,
      runUrl: options.runUrl,
      checkMs: options.reportMs,
      log: options.log,
    });
    this.dispatcher = new Dispatcher({
      forges: this.#forges,
      runs: options.runs,
      store: options.store,
      sources: options.sources,
      registered: options.registered,
      workspaces: this.workspaces,
      clock: this.#clock,
      ...(this.reporter.enabled && { reports: this.reporter }),
      ...(options.log && { log: options.log }),
    });
  }

  /**
   * Starts polling every source whose lease this worker gets (now, and trying again at every
   * heartbeat), checking schedules now and at every minute, sweeping workspaces.
   */
  start(): void {
    for (const source of this.#options.sources) this.#poll(source);
    this.#scheduleTick();
    this.#sweepTick();
    if (this.reporter.enabled) this.#reportTick();
  }

  /** Stops every timer, waits for the work under way, and gives up its leases (another worker takes them at once). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) this.#clock.clearTimeout(timer);
    this.#timers.clear();
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
    await this.reporter.settle();
    await this.leases.releaseAll();
  }

  /**
   * What `receiveHook` (receiver.ts) needs for `POST /hooks/{source}`: the source's kind, webhook
   * secret (read now) and forge, delivery ids recorded in storage, events handed to `deliver`.
   */
  hooks(onLateError: (error: unknown) => void): HookDeps {
    return {
      source: (name) => {
        const source = this.#options.sources.find((s) => s.name === name);
        if (!source) return undefined;
        let secret: string | undefined;
        try {
          secret = source.webhookSecret && readSecret(source.webhookSecret);
        } catch (error) {
          onLateError(error);
        }
        return { kind: source.kind, secret, forge: this.#forges.get(name) };
      },
      firstDelivery: (source, delivery) =>
        this.#options.store.recordDelivery(source, delivery, this.#clock.now()),
      prefetch: (events) => {
        // A run of a pushed commit needs it in the mirror: the fetch starts now, beside the recording
        // and the dispatch (the workspace waits for it), not after them.
        const source = this.#options.sources.find((s) => s.name === events[0]?.source);
        if (source && events.some((e) => shaOf(e) !== undefined))
          void this.#track(this.workspaces.fetchFor(source, events).catch(() => {}));
      },
      deliver: async (events) => {
        // Stored before the answer; the runs start after it (a crash in between is made good by the
        // next poll, which sees the same events under the same keys).
        for (const event of events)
          await this.#options.store.recordEvent({
            key: eventKey(event),
            source: event.source,
            kind: event.kind,
            event: JSON.parse(JSON.stringify(event)) as Json,
            seenAt: this.#clock.now(),
          });
        void this.deliver(events).catch(onLateError);
      },
      onLateError,
      now: () => this.#clock.now(),
    };
  }

  /** Hands events to the dispatcher (webhooks call this). */
  deliver(events: readonly TriggerEvent[]) {
    return this.#track(this.dispatcher.deliver(events));
  }

  /**
   * Fires every schedule whose minute came since it last fired (once, however many minutes were
   * missed). Of a cluster, the minute is claimed by one worker (`claimFiring`), and a source's
   * schedules are fired by the worker that polls the source: the one that read its repository's.
   */
  async fireSchedules(): Promise<void> {
    const { store, sources } = this.#options;
    const now = this.#clock.now();
    for (const schedule of this.schedules()) {
      if (sources.some((s) => s.name === schedule.source)) {
        if (!(await this.leases.take(sourceLease(schedule.source)))) continue;
      }
      const last = await store.lastFiring(schedule.id);
      const after = last ?? minuteOf(now) - 60_000;
      const minute = latestFiring(parseCron(schedule.cron), schedule.timeZone, after, now);
      if (minute === undefined) {
        if (last === undefined) await store.claimFiring(schedule.id, after);
        continue;
      }
      if (!(await store.claimFiring(schedule.id, minute))) continue;
      const source = this.#options.sources.find((s) => s.name === schedule.source);
      const sha = source && (await remoteHead(this.workspaces.access(source)).catch(() => undefined));
      await this.deliver([
        {
          kind: "schedule",
          cron: schedule.cron,
          timeZone: schedule.timeZone,
          minute,
          ...(sha && { sha }),
          source: schedule.source,
          at: now,
          arrival: { via: "clock" },
        },
      ]);
    }
  }

  /**
   * Every schedule: of the pipelines on the server's disk (sources' files and registered ones), and of
   * sources' pipelines in their repositories (`path:`), as the last poll read them at the default
   * branch's head.
   */
  schedules(): Schedule[] {
    const out: Schedule[] = [];
    const add = (source: string, file: string) => {
      try {
        out.push(...schedulesOf(source, readFileSync(file, "utf8"), file));
      } catch {
        // A file with problems is reported when an event reaches it.
      }
    };
    for (const source of this.#options.sources) {
      for (const spec of source.pipelines) if ("file" in spec) add(source.name, spec.file);
      out.push(...(this.#inRepository.get(source.name)?.schedules ?? []));
    }
    for (const [name, file] of this.#options.registered ?? []) add(name, file);
    return out;
  }

  /**
   * Reads the schedules of a source's pipelines in its repository (`path:`) at its default branch's
   * head, when the head moved since the last read (each poll calls this). A path the branch lacks, or
   * a file with problems, has none.
   */
  async readRepositorySchedules(source: SourceConfig): Promise<void> {
    const paths = source.pipelines.flatMap((spec) => ("path" in spec ? [spec.path] : []));
    if (paths.length === 0) return;
    const sha = await remoteHead(this.workspaces.access(source));
    if (sha === undefined) {
      this.#inRepository.delete(source.name);
      return;
    }
    if (this.#inRepository.get(source.name)?.sha === sha) return;
    const schedules: Schedule[] = [];
    for (const path of paths) {
      const text = await this.workspaces.readAt(source, sha, path).catch(() => undefined);
      if (text === undefined) continue;
      try {
        schedules.push(...schedulesOf(source.name, text, path));
      } catch {
        // Reported when an event reaches it.
      }
    }
    this.#inRepository.set(source.name, { sha, schedules });
  }

  async status(options: { limit?: number } = {}): Promise<TriggersResponse> {
    const { store, sources } = this.#options;
    const states = new Map((await store.listSourceStates()).map((s) => [s.source, s]));
    const holders = await this.leases.holders();
    const events = await store.recentEvents(options.limit ?? 50);
    const schedules = await Promise.all(
      this.schedules().map(async (s) => ({
        source: s.source,
        pipeline: s.pipeline,
        cron: s.cron,
        timeZone: s.timeZone,
        lastFiredFor: (await store.lastFiring(s.id)) ?? null,
      })),
    );
    return {
      sources: [
        ...sources,
        // Sources no longer (or not here) configured, with the state they left.
        ...[...states.keys()]
          .filter((name) => !sources.some((s) => s.name === name))
          .map((name) => ({ name, kind: "-", url: "-", pollMs: 0 })),
      ].map((s) => {
        const state = states.get(s.name);
        return {
          name: s.name,
          kind: s.kind,
          url: s.url.replace(/\/\/[^/@]*@/, "//"),
          pollMs: s.pollMs,
          lastPollAt: state?.lastPollAt ?? null,
          outcome: state?.outcome ?? null,
          failures: state?.failures ?? 0,
          nextPollAt: state?.nextPollAt ?? null,
          refs: Object.keys(state?.refs ?? {}).length,
          polledBy: holders.get(sourceLease(s.name)) ?? null,
        };
      }),
      events: events.map((e) => ({
        key: e.key,
        source: e.source,
        kind: e.kind,
        seenAt: e.seenAt,
        summary: summarize(e.event as Record<string, unknown>),
        verdicts: e.verdicts.map((v) => ({
          pipeline: v.pipeline,
          verdict: v.verdict,
          reason: v.reason,
          runId: v.runId,
          at: v.at,
        })),
      })),
      awaitingApproval: events.flatMap((e) =>
        e.verdicts
          .filter((v) => v.verdict === "awaiting_approval")
          .map((v) => ({ key: e.key, pipeline: v.pipeline, reason: v.reason })),
      ),
      schedules,
      reports: (await store.recentReports(20)).map((r) => ({
        key: r.key,
        source: r.source,
        pipeline: r.pipeline,
        runId: r.runId,
        state: r.state,
        replyPending: r.reply !== null,
        done: r.done,
        failures: r.failures,
        error: r.error,
        at: r.at,
      })),
    };
  }

  /**
   * One turn of a source's loop: renews (or tries to take) its lease; while it holds it, polls when
   * the poll is due; then comes back at the next heartbeat or poll, whichever is sooner. A worker
   * without the lease only tries it again at each heartbeat: it takes over within the lease and one
   * heartbeat after the holder stops (at once when the holder's process is gone).
   */
  #poll(source: SourceConfig): void {
    if (this.#stopped) return;
    const heartbeatMs = this.#options.heartbeatMs ?? DEFAULT_TRIGGER_HEARTBEAT_MS;
    const work = this.#turn(source)
      .catch((error) => {
        this.#options.log?.(`source ${source.name}: ${(error as Error).message}`);
        return undefined;
      })
      .then((nextPollAt) => {
        const now = this.#clock.now();
        const due = nextPollAt === undefined ? heartbeatMs : Math.max(0, nextPollAt - now);
        this.#after(Math.min(heartbeatMs, due), () => this.#poll(source));
      });
    this.#track(work);
  }

  /** Polls the source if this worker holds its lease and the poll is due; when it is due next (undefined: not held). */
  async #turn(source: SourceConfig): Promise<number | undefined> {
    if (!(await this.leases.take(sourceLease(source.name)))) {
      // Another worker polls it: what this one read of its repository goes stale, and when it gets
      // the lease back it polls at once.
      this.#nextPoll.delete(source.name);
      this.#inRepository.delete(source.name);
      return undefined;
    }
    const due = this.#nextPoll.get(source.name);
    if (due !== undefined && this.#clock.now() < due) return due;
    const { store, random } = this.#options;
    const state = await pollSource({
      source,
      store,
      dispatcher: this.dispatcher,
      workspaces: this.workspaces,
      forge: this.#forges.get(source.name),
      now: () => this.#clock.now(),
      ...(random && { random }),
    }).catch(() => ({ nextPollAt: this.#clock.now() + source.pollMs, outcome: null }));
    if (state.outcome === "ok")
      await this.readRepositorySchedules(source).catch((error) =>
        this.#options.log?.(
          `source ${source.name}: schedules in the repository: ${(error as Error).message}`,
        ),
      );
    const next = state.nextPollAt ?? this.#clock.now();
    this.#nextPoll.set(source.name, next);
    return next;
  }

  #scheduleTick(): void {
    if (this.#stopped) return;
    const work = this.fireSchedules().catch((error) =>
      this.#options.log?.(`schedules: ${(error as Error).message}`),
    );
    this.#track(
      work.then(() => {
        const now = this.#clock.now();
        // Just after the next minute starts.
        this.#after(minuteOf(now) + 60_000 - now + 50, () => this.#scheduleTick());
      }),
    );
  }

  #sweepTick(): void {
    if (this.#stopped) return;
    const work = this.workspaces
      .sweep(this.#options.runs)
      .catch((error) => this.#options.log?.(`workspaces: ${(error as Error).message}`));
    this.#track(work.then(() => this.#after(this.#options.sweepMs ?? 2_000, () => this.#sweepTick())));
  }

  #reportTick(): void {
    if (this.#stopped) return;
    const work = this.reporter
      .tick()
      .catch((error) => this.#options.log?.(`reports: ${(error as Error).message}`));
    this.#track(work.then(() => this.#after(this.#options.reportMs ?? 2_000, () => this.#reportTick())));
  }

  #after(ms: number, then: () => void): void {
    if (this.#stopped) return;
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      then();
    }, ms);
    this.#timers.add(timer);
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#busy.add(work);
    const done = () => this.#busy.delete(work);
    work.then(done, done);
    return work;
  }
}

/** The `on.schedule` entries of a pipeline's text; its problems throw. */
function schedulesOf(source: string, text: string, file: string): Schedule[] {
  const pipeline = parsePipeline(text, file);
  return (pipeline.on?.schedule ?? []).map((s) => ({
    id: JSON.stringify([source, pipeline.name, s.cron, s.timeZone]),
    source,
    pipeline: pipeline.name,
    cron: s.cron,
    timeZone: s.timeZone,
  }));
}

/** The source's token, or none when it can't be read now (its polls will say why). */
function tokenOf(source: SourceConfig): string | undefined {
  try {
    return source.credentials && readSecret(source.credentials);
  } catch {
    return undefined;
  }
}

/** One line for an event: `push main@1a2b3c4d`, `pull_request #12 opened`, `comment !testme by ana on #12`. */
function summarize(event: Record<string, unknown>): string {
  const sha = typeof event.sha === "string" ? event.sha.slice(0, 12) : "";
  switch (event.kind) {
    case "push":
      return `push ${String(event.branch ?? event.tag ?? event.ref)}@${sha}`;
    case "pull_request":
      return `pull_request #${String(event.number)} ${String(event.action)} ${sha}`;
    case "comment": {
      const pr = event.pullRequest as { number?: number } | undefined;
      const author = event.author as { login?: string } | undefined;
      const body = String(event.body ?? "")
        .split("\n")[0]!
        .slice(0, 60);
      return `comment "${body}" by ${author?.login ?? "?"} on #${String(pr?.number)}`;
    }
    case "schedule":
      return `schedule ${String(event.cron)} ${String(event.timeZone)} at ${new Date(Number(event.minute)).toISOString()}`;
    default:
      return String(event.kind);
  }
}
