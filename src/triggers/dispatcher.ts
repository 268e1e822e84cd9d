/**
 * `deliver(events)`: every source (polls, webhooks, the clock) hands its events here. Each event is
 * recorded by its key; each pipeline of its source decides (started, ignored and why, awaiting
 * approval), and the decision is recorded; a matching run is started through the RunService with an
 * idempotency key made of the event's key and the pipeline, so an event seen twice (by a webhook and
 * a poll, a replay, a crash between starting and recording) starts one run.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import type { Json } from "../json.js";
import type { Pipeline } from "../pipeline/model.js";
import { parsePipeline } from "../pipeline/parse.js";
import type { RunService } from "../runs/service.js";
import type { TriggerStore, Verdict, VerdictRecord } from "../storage/triggers.js";
import type { SourceConfig, SourcePipeline } from "./config.js";
import { eventContext } from "./context.js";
import { eventKey, pullRequestOf, type TriggerEvent } from "./event.js";
import type { Forge } from "./forges/forge.js";
import { matchEvent } from "./match.js";
import { DEFAULT_APPROVE_COMMAND, type Judgement, judge } from "./trust.js";
import type { Workspaces } from "./workspaces.js";

/** GitHub's `author_association` values of people with write access, for a source without a forge client. */
const WRITERS = new Set(["OWNER", "MEMBER", "COLLABORATOR"]);

export interface DispatcherOptions {
  runs: RunService;
  store: TriggerStore;
  sources: readonly SourceConfig[];
  /** Pipeline files not tied to a source (`serve --pipeline`), by name: their schedules fire too. */
  registered?: ReadonlyMap<string, string> | undefined;
  workspaces: Workspaces;
  /** Forge clients by source, asked whether an author may write. */
  forges?: ReadonlyMap<string, Pick<Forge, "canWrite">> | undefined;
  clock: Clock;
  /** Told of each run started and each comment command refused, to report back to the forge (opt-in). */
  reports?: Reports | undefined;
  /** Where a decision is logged besides storage. */
  log?: (message: string) => void;
}

/** What the dispatcher tells the reporter (reporter.ts); neither call may fail a delivery. */
export interface Reports {
  started(
    event: TriggerEvent,
    key: string,
    pipeline: string,
    run: { id: string; name: string | null; tiers: readonly string[] },
  ): Promise<void>;
  /** `command`: the pipeline's comment command, if it has one. */
  refused(event: TriggerEvent, key: string, decision: Decision, command: string | undefined): Promise<void>;
}

/** What one pipeline made of one event. */
export interface Decision {
  key: string;
  pipeline: string;
  verdict: Verdict;
  reason: string | null;
  runId: string | null;
}

/** A pipeline as read for an event: from the server's disk, or from the repository at the commit. */
interface Loaded {
  file: string;
  text: string;
  pipeline: Pipeline;
}

export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #sources: Map<string, SourceConfig>;
  /** Deliveries run one after another, so two sightings of one event never race to start its run. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#sources = new Map(options.sources.map((s) => [s.name, s]));
  }

  /** Records and acts on each event, in order; resolves with every pipeline's decision. */
  deliver(events: readonly TriggerEvent[]): Promise<Decision[]> {
    const run = this.#queue.then(async () => {
      const decisions: Decision[] = [];
      for (const event of events) decisions.push(...(await this.#deliverOne(event)));
      return decisions;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  async #deliverOne(event: TriggerEvent): Promise<Decision[]> {
    const { store, clock } = this.#options;
    const key = eventKey(event);
    await store.recordEvent({
      key,
      source: event.source,
      kind: event.kind,
      event: JSON.parse(JSON.stringify(event)) as Json,
      seenAt: clock.now(),
    });
    const decided = new Map((await store.verdicts(key)).map((v) => [v.pipeline, v]));
    // Who may start what is judged once per event, when a pipeline wants to run it.
    let judged: Promise<Judgement> | undefined;
    const judgement = () => {
      judged ??= this.#judge(event);
      return judged;
    };
    const decisions: Decision[] = [];
    if (event.kind === "comment" && firstWord(event.body) === DEFAULT_APPROVE_COMMAND) {
      // Seen again (the next poll, a webhook then a poll): it approved the head it was first seen at,
      // never the pull request's head now, which a new push to the fork may have moved.
      const earlier = decided.get(DEFAULT_APPROVE_COMMAND);
      if (earlier) return [toDecision(earlier)];
      return [await this.#approve(event, key, await judgement(), decided)];
    }
    for (const spec of this.#pipelinesOf(event)) {
      const label = "file" in spec ? spec.file : spec.path;
      let loaded: Loaded;
      try {
        loaded = await this.#load(event, spec);
      } catch (error) {
        decisions.push(await this.#decide(decided, key, label, "ignored", (error as Error).message));
        continue;
      }
      const name = loaded.pipeline.name;
      const earlier = decided.get(name);
      // Decided before (a replay, a webhook and a poll): said once, acted on once.
      if (earlier && earlier.verdict !== "awaiting_approval") {
        decisions.push(toDecision(earlier));
        continue;
      }
      const decision = await this.#decidePipeline(event, key, loaded, decided, judgement);
      decisions.push(decision);
      if (decision.verdict !== "started")
        await this.#options.reports?.refused(event, key, decision, loaded.pipeline.on?.comment?.command);
    }
    return decisions;
  }

  /** What the trust policy says of the event: the source's allow-list, the forge's word on writers, approvals. */
  async #judge(event: TriggerEvent): Promise<Judgement> {
    const source = this.#sources.get(event.source);
    if (!source) return { verdict: "start", untrustedCode: false, why: "a registered pipeline's schedule" };
    const forge = this.#options.forges?.get(source.name);
    const number = pullRequestOf(event);
    const approved = new Set(
      number === undefined ? [] : await this.#options.store.approvals(source.name, number),
    );
    return judge(
      event,
      { allow: source.allow, approveCommand: DEFAULT_APPROVE_COMMAND },
      async (author) => {
        const said = await forge?.canWrite(author).catch(() => undefined);
        if (said !== undefined) return said;
        // The event itself says so where the forge sends it (GitHub's author_association).
        return author.association !== undefined && WRITERS.has(author.association) ? true : undefined;
      },
      (_number, sha) => approved.has(sha),
    );
  }

  /**
   * `!approve` on a fork's pull request: a writer's approval of its head commit is recorded, and what
   * waits for that commit is decided again (and starts).
   */
  async #approve(
    event: TriggerEvent & { kind: "comment" },
    key: string,
    judgement: Judgement,
    decided: Map<string, VerdictRecord>,
  ): Promise<Decision> {
    if (judgement.verdict !== "approve")
      return this.#decide(decided, key, DEFAULT_APPROVE_COMMAND, "ignored", judgement.why);
    const { store, clock } = this.#options;
    await store.approve(event.source, judgement.pullRequest, judgement.sha, judgement.by, clock.now());
    const decision = await this.#decide(
      decided,
      key,
      DEFAULT_APPROVE_COMMAND,
      "ignored",
      `${judgement.why}: commit ${judgement.sha.slice(0, 12)} of #${judgement.pullRequest} may run`,
    );
    for (const waiting of await store.recentEvents(1_000, event.source)) {
      if (!waiting.verdicts.some((v) => v.verdict === "awaiting_approval")) continue;
      const held = waiting.event as unknown as TriggerEvent;
      const pr = held.kind === "pull_request" ? held : held.kind === "comment" ? held.pullRequest : undefined;
      if (pr && pr.number === judgement.pullRequest && pr.sha === judgement.sha) await this.#deliverOne(held);
    }
    return decision;
  }

  async #decidePipeline(
    event: TriggerEvent,
    key: string,
    loaded: Loaded,
    decided: Map<string, VerdictRecord>,
    judgement: () => Promise<Judgement>,
  ): Promise<Decision> {
    const name = loaded.pipeline.name;
    const match = matchEvent(loaded.pipeline.on, event);
    if (!match.run) return this.#decide(decided, key, name, "ignored", match.reason);
    const source = this.#sources.get(event.source);
    const judged = await judgement();
    if (judged.verdict === "ignore" || judged.verdict === "approve")
      return this.#decide(decided, key, name, "ignored", judged.why);
    if (judged.verdict === "await-approval")
      return this.#decide(decided, key, name, "awaiting_approval", judged.why);
    const untrusted = judged.untrustedCode;

    // `commits: each`: one run per commit, each its own event (so each is started once, too).
    const shas = match.commits ?? [undefined];
    let last: Decision | undefined;
    for (const sha of shas) {
      const one: TriggerEvent = sha === undefined || event.kind !== "push" ? event : { ...event, sha };
      const oneKey = eventKey(one);
      if (oneKey !== key) {
        await this.#options.store.recordEvent({
          key: oneKey,
          source: one.source,
          kind: one.kind,
          event: JSON.parse(JSON.stringify(one)) as Json,
          seenAt: this.#options.clock.now(),
        });
        const before = (await this.#options.store.verdicts(oneKey)).find((v) => v.pipeline === name);
        if (before?.verdict === "started") {
          last = toDecision(before);
          continue;
        }
      }
      last = await this.#start(
        one,
        oneKey,
        loaded,
        match,
        source,
        untrusted,
        oneKey === key ? decided : new Map(),
      );
    }
    if (shas.length > 1 && last?.verdict === "started")
      return this.#decide(
        decided,
        key,
        name,
        "started",
        `one run per commit: ${shas.length} runs`,
        last.runId,
      );
    return last!;
  }

  async #start(
    event: TriggerEvent,
    key: string,
    loaded: Loaded,
    match: Extract<ReturnType<typeof matchEvent>, { run: true }>,
    source: SourceConfig | undefined,
    untrusted: boolean,
    decided: Map<string, VerdictRecord>,
  ): Promise<Decision> {
    const { runs, workspaces } = this.#options;
    const name = loaded.pipeline.name;
    const runKey = `trigger:${createHash("sha256")
      .update(JSON.stringify([key, name]))
      .digest("hex")
      .slice(0, 32)}`;
    const sha = shaOf(event);
    let workspace: string | undefined;
    let file = loaded.file;
    try {
      if (source && sha !== undefined) {
        workspace = await workspaces.prepare(source, sha, runKey);
        // A pipeline read from the repository is the workspace's own file.
        if (!file.startsWith("/")) file = join(workspace, file);
      }
      const started = await runs.submit(
        { file, source: loaded.text },
        {
          inputs: match.inputs,
          tiers: match.tiers,
          key: runKey,
          event: eventContext(event, match.command === undefined ? {} : { command: match.command }),
          ...(workspace !== undefined && { workspace }),
          ...(untrusted && { untrusted }),
        },
      );
      this.#options.log?.(`${key}: started run ${started.id} of ${name}`);
      const decision = await this.#decide(decided, key, name, "started", null, started.id, workspace);
      await this.#options.reports?.started(event, key, name, { ...started, tiers: match.tiers });
      return decision;
    } catch (error) {
      // Started already (by another server sharing the database, or before a crash)?
      const existing = await runs.list({ key: runKey }).catch(() => []);
      if (existing[0]) {
        const decision = await this.#decide(decided, key, name, "started", null, existing[0].id, workspace);
        await this.#options.reports?.started(event, key, name, { ...existing[0], tiers: match.tiers });
        return decision;
      }
      if (workspace !== undefined) workspaces.remove(workspace);
      return this.#decide(
        decided,
        key,
        name,
        "ignored",
        `the run could not start: ${(error as Error).message}`,
      );
    }
  }

  async #decide(
    decided: Map<string, VerdictRecord>,
    key: string,
    pipeline: string,
    verdict: Verdict,
    reason: string | null,
    runId: string | null = null,
    workspace: string | null = null,
  ): Promise<Decision> {
    const record: VerdictRecord = {
      key,
      pipeline,
      verdict,
      reason,
      runId,
      workspace,
      at: this.#options.clock.now(),
    };
    await this.#options.store.putVerdict(record);
    decided.set(pipeline, record);
    if (verdict !== "started") this.#options.log?.(`${key}: ${pipeline} ${verdict}: ${reason ?? ""}`);
    return toDecision(record);
  }

  /** The pipelines an event may start: its source's, or a registered pipeline's own schedule. */
  #pipelinesOf(event: TriggerEvent): SourcePipeline[] {
    const source = this.#sources.get(event.source);
    if (source) return source.pipelines;
    const file = this.#options.registered?.get(event.source);
    return event.kind === "schedule" && file !== undefined ? [{ file }] : [];
  }

  async #load(event: TriggerEvent, spec: SourcePipeline): Promise<Loaded> {
    let file: string;
    let text: string;
    if ("file" in spec) {
      file = spec.file;
      try {
        text = readFileSync(file, "utf8");
      } catch (error) {
        throw new Error(
          `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        );
      }
    } else {
      const source = this.#sources.get(event.source);
      const sha = shaOf(event);
      if (!source || sha === undefined) throw new Error(`${spec.path}: no commit to read it at`);
      file = spec.path;
      try {
        text = await this.#options.workspaces.readAt(source, sha, spec.path);
      } catch {
        throw new Error(`${spec.path} does not exist at ${sha.slice(0, 12)}`);
      }
    }
    try {
      return { file, text, pipeline: parsePipeline(text, file) };
    } catch (error) {
      throw new Error(`${file} has problems: ${(error as Error).message.split("\n").slice(0, 3).join(" ")}`);
    }
  }
}

function toDecision(v: VerdictRecord): Decision {
  return { key: v.key, pipeline: v.pipeline, verdict: v.verdict, reason: v.reason, runId: v.runId };
}

/** The commit a run of the event checks out. */
export function shaOf(event: TriggerEvent): string | undefined {
  switch (event.kind) {
    case "push":
    case "pull_request":
      return event.sha;
    case "comment":
      return event.pullRequest.sha;
    case "schedule":
      return event.sha;
  }
}

function firstWord(text: string): string {
  return text.trim().split(/\s+/, 1)[0] ?? "";
}
