/**
 * Reporting back to the forge, for a source with `report:` (opt-in; off by default): a commit status
 * per triggered run (`pending` when it starts, then `success`, `failure` or `error`, with a link to
 * the run) and a comment answering a comment command (the runs it started, or optionally why it
 * started nothing). What is left to report is kept in storage, so a run's final status is reported
 * after a restart too. A forge call that fails never touches the run: it is logged, kept (and shown
 * by `slipway triggers`), and retried with backoff until it succeeds or retries run out.
 */
import type { Clock } from "../clock.js";
import { NotFoundError } from "../errors.js";
import type { RunDetail } from "../runs/schemas.js";
import type { RunService } from "../runs/service.js";
import type { ReportRecord, TriggerStore } from "../storage/triggers.js";
import { FINAL_STATUSES, type RunStatus } from "../storage/types.js";
import { readSecret, type SourceConfig } from "./config.js";
import { type Reports, shaOf } from "./dispatcher.js";
import type { TriggerEvent } from "./event.js";
import { createForge } from "./forges/create.js";
import type { Forge, StatusState } from "./forges/forge.js";

/** Failed forge calls in a row after which a report is given up (kept, with its error, for people to see). */
export const MAX_REPORT_FAILURES = 8;
/** The first retry after a failed forge call; each further failure doubles it, up to `MAX_RETRY_MS`. */
const FIRST_RETRY_MS = 5_000;
const MAX_RETRY_MS = 10 * 60_000;
/** How often a held run (failed, or needing attention), which may still be retried, is looked at. */
const STOPPED_CHECK_MS = 60_000;
/** Reports handled per tick. */
const BATCH = 100;

export interface ReporterOptions {
  runs: Pick<RunService, "show">;
  store: TriggerStore;
  sources: readonly SourceConfig[];
  clock: Clock;
  /** The link to a run people can follow (from the server's `public_url:`); undefined: no link. */
  runUrl?: ((id: string) => string | undefined) | undefined;
  /** How soon a running run is looked at again. Default 2 s. */
  checkMs?: number | undefined;
  /** The client that writes to a source's forge, with the source's write token. Default: createForge. */
  forgeFor?: ((source: SourceConfig, token: string) => Forge) | undefined;
  log?: ((message: string) => void) | undefined;
}

/** A run a trigger started, as the reporter needs it. */
export interface StartedRun {
  id: string;
  name: string | null;
  tiers: readonly string[];
}

export class Reporter implements Reports {
  readonly #options: ReporterOptions;
  readonly #sources: Map<string, SourceConfig>;
  /** Reports being worked on now (by `key|pipeline`), so a tick and a start never post twice. */
  readonly #working = new Set<string>();
  readonly #busy = new Set<Promise<unknown>>();

  constructor(options: ReporterOptions) {
    this.#options = options;
    this.#sources = new Map(options.sources.map((s) => [s.name, s]));
  }

  /** Whether any source reports back (else nothing here has work). */
  get enabled(): boolean {
    return [...this.#sources.values()].some((s) => s.report !== undefined);
  }

  /** A run started for an event: its status (and, for a comment command, a reply) is reported from now on. */
  async started(event: TriggerEvent, key: string, pipeline: string, run: StartedRun): Promise<void> {
    const report = this.#sources.get(event.source)?.report;
    if (!report) return;
    const sha = report.status ? shaOf(event) : undefined;
    const reply =
      event.kind === "comment" && report.comments ? this.#startedText(event, pipeline, run) : undefined;
    if (sha === undefined && reply === undefined) return;
    await this.#record({
      ...this.#blank(event, key, pipeline),
      runId: run.id,
      sha: sha ?? null,
      reply: reply ?? null,
    });
  }

  /**
   * A pipeline decided not to start (or to wait) for a comment command meant for it (its first word is
   * the pipeline's `command`): with `refusals: true`, a reply says why.
   */
  async refused(
    event: TriggerEvent,
    key: string,
    decision: { pipeline: string; verdict: string; reason: string | null },
    command: string | undefined,
  ): Promise<void> {
    const report = this.#sources.get(event.source)?.report;
    if (!report?.refusals || event.kind !== "comment" || command === undefined) return;
    if (firstWord(event.body) !== command) return;
    const why = decision.reason ?? "no reason given";
    const text =
      decision.verdict === "awaiting_approval"
        ? `Slipway will run ${decision.pipeline} once approved: ${why}.`
        : `Slipway did not start ${decision.pipeline}: ${why}.`;
    // Its own record: the run an approval starts later is reported under the event's key.
    await this.#record({
      ...this.#blank(event, `${key}:${decision.verdict}`, decision.pipeline),
      reply: text,
    });
  }

  /** Works through every report that is due (the service calls this on a timer). */
  async tick(): Promise<void> {
    const due = await this.#options.store.dueReports(this.#options.clock.now(), BATCH);
    await Promise.all(due.map((report) => this.#work(report)));
  }

  /** Waits for the forge calls under way. */
  async settle(): Promise<void> {
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
  }

  #blank(event: TriggerEvent, key: string, pipeline: string): ReportRecord {
    const now = this.#options.clock.now();
    return {
      key,
      pipeline,
      source: event.source,
      runId: null,
      sha: null,
      number: event.kind === "comment" ? event.pullRequest.number : null,
      reply: null,
      state: null,
      done: false,
      failures: 0,
      error: null,
      nextAt: now,
      at: now,
    };
  }

  /** Records a report once (a second sighting of the event adds nothing), then starts on it at once. */
  async #record(report: ReportRecord): Promise<void> {
    try {
      if (!(await this.#options.store.recordReport(report))) return;
    } catch (error) {
      this.#options.log?.(`${report.key}: cannot record a report for ${report.pipeline}: ${message(error)}`);
      return;
    }
    void this.#work(report);
  }

  #work(report: ReportRecord): Promise<void> {
    const id = JSON.stringify([report.key, report.pipeline]);
    if (this.#working.has(id)) return Promise.resolve();
    this.#working.add(id);
    const work = this.#advance(report)
      .catch((error) =>
        this.#options.log?.(`${report.key}: report for ${report.pipeline}: ${message(error)}`),
      )
      .finally(() => this.#working.delete(id));
    this.#busy.add(work);
    void work.then(() => this.#busy.delete(work));
    return work;
  }

  /** Posts what the forge has not been told yet; records how far it got, and any failure. */
  async #advance(report: ReportRecord): Promise<void> {
    const { clock, store } = this.#options;
    const source = this.#sources.get(report.source);
    const config = source?.report;
    const next: ReportRecord = { ...report };
    const save = (changes: Partial<ReportRecord>) =>
      store.putReport({ ...next, ...changes, at: clock.now() });
    // The source, or its `report:`, is gone from the config: nothing more to say.
    if (!source || !config) return save({ done: true });
    try {
      const forge = (this.#options.forgeFor ?? writer)(source, readSecret(config.credentials));
      if (next.reply !== null && next.number !== null) {
        await forge.reply(next.number, next.reply);
        next.reply = null;
      }
      let wait = 0;
      if (next.runId !== null && next.sha !== null) {
        const run = await this.#options.runs.show(next.runId).catch((error: unknown) => {
          if (error instanceof NotFoundError) return undefined;
          throw error;
        });
        // The run is gone (pruned): its last status stands.
        if (run === undefined) return await save({ done: true, failures: 0, error: null });
        const status = statusOf(run);
        if (status.state !== next.state) {
          const url = this.#options.runUrl?.(run.id);
          await forge.reportStatus(next.sha, {
            state: status.state,
            ...(url !== undefined && { url }),
            description: status.description,
            context: `slipway/${next.pipeline}`,
          });
          next.state = status.state;
        }
        if (!FINAL_STATUSES.includes(run.status))
          wait = status.state === "pending" ? (this.#options.checkMs ?? 2_000) : STOPPED_CHECK_MS;
      }
      await save({ done: wait === 0, failures: 0, error: null, nextAt: clock.now() + wait });
    } catch (error) {
      const failures = next.failures + 1;
      const giveUp = failures >= MAX_REPORT_FAILURES;
      const delay = Math.min(FIRST_RETRY_MS * 2 ** (failures - 1), MAX_RETRY_MS);
      const text = message(error);
      this.#options.log?.(
        `${report.key}: reporting ${report.pipeline} to ${report.source} failed (${failures} in a row): ${text}${giveUp ? "; giving up" : `; retrying in ${Math.round(delay / 1000)}s`}`,
      );
      await save({ failures, error: text, done: giveUp, nextAt: clock.now() + delay });
    }
  }

  #startedText(event: TriggerEvent & { kind: "comment" }, pipeline: string, run: StartedRun): string {
    const label = run.name ?? run.id;
    const url = this.#options.runUrl?.(run.id);
    const tiers = run.tiers.length > 0 ? ` with ${run.tiers.join(", ")}` : "";
    return `Slipway started ${pipeline}${tiers} at ${event.pullRequest.sha.slice(0, 12)}: run ${url === undefined ? `\`${label}\`` : `[${label}](${url})`}.`;
  }
}

/** What a run's status says on the forge. */
export function statusOf(run: Pick<RunDetail, "status" | "cause">): {
  state: StatusState;
  description: string;
} {
  const cause = run.cause;
  const why =
    cause?.kind === "failure"
      ? `: ${cause.action}: ${cause.error.message}`
      : cause?.kind === "cancel"
        ? `: ${cause.reason}`
        : cause?.kind === "parent"
          ? `: undone by its parent run ${cause.runId}`
          : "";
  const described: Record<RunStatus, [StatusState, string]> = {
    running: ["pending", "running"],
    waiting: ["pending", "running"],
    compensating: ["pending", "failed, undoing"],
    completed: ["success", "completed"],
    failed: ["failure", `failed${why} (held for a retry)`],
    compensated: ["failure", `failed${why}`],
    cancelled: ["error", `cancelled${why}`],
    needs_attention: ["error", "needs attention"],
  };
  const [state, description] = described[run.status];
  return { state, description: description.split("\n")[0]!.slice(0, 140) };
}

function writer(source: SourceConfig, token: string): Forge {
  if (source.kind === "git") throw new Error("a plain git source has no forge to report to");
  return createForge(source.kind, {
    url: source.url,
    token,
    ...(source.api !== undefined && { api: source.api }),
  });
}

function firstWord(text: string): string {
  return text.trim().split(/\s+/, 1)[0] ?? "";
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
