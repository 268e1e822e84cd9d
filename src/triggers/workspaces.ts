/**
 * Repositories on the server's disk: one bare mirror per source (`<data>/mirrors/<source>.git`,
 * fetched, so repeated runs fetch little), and per run a checkout of its commit that borrows the
 * mirror's objects (`<data>/workspaces/<id>`), removed when the run ends, or `keep_failed` after a
 * failed one, or when the run is pruned.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import type { RunService } from "../runs/service.js";
import type { Launcher } from "../shell/launcher.js";
import type { TriggerStore } from "../storage/triggers.js";
import { FINAL_STATUSES, type RunStatus } from "../storage/types.js";
import { readSecret, type SourceConfig } from "./config.js";
import { pullRequestOf, type TriggerEvent } from "./event.js";
import {
  borrowingRepository,
  checkout,
  fetchMirror,
  fetchRefs,
  type GitAccess,
  git,
  gitAccess,
  maintainMirror,
  readAt,
} from "./git.js";

/** Statuses of a run that ended well, or was cancelled: nothing to look at in its workspace. */
const CLEAN_END: readonly RunStatus[] = ["completed", "cancelled"];

export class Workspaces {
  readonly #dataDir: string;
  readonly #store: TriggerStore;
  readonly #clock: Clock;
  readonly #keepFailedMs: (source: string) => number;
  /** Who starts git here (the server's launcher process; absent: this process). */
  readonly #launcher: Launcher | undefined;
  /** Fetches (and upkeep) of one mirror, one at a time, by source name. */
  readonly #locks = new Map<string, Promise<unknown>>();
  /** The fetch of each mirror waiting its turn (not started yet), which later asks join. */
  readonly #waiting = new Map<string, { refs: readonly string[] | "all"; done: Promise<void> }>();
  /** Mirrors fetched since the last sweep looked after them (git's upkeep runs there, not in the fetch). */
  readonly #fetched = new Map<string, string>();

  constructor(options: {
    dataDir: string;
    store: TriggerStore;
    clock: Clock;
    sources: readonly SourceConfig[];
    launcher?: Launcher | undefined;
  }) {
    this.#launcher = options.launcher;
    this.#dataDir = options.dataDir;
    this.#store = options.store;
    this.#clock = options.clock;
    const keep = new Map(options.sources.map((s) => [s.name, s.keepFailedMs]));
    this.#keepFailedMs = (source) => keep.get(source) ?? 24 * 3_600_000;
  }

  /** The source's bare mirror. */
  mirrorOf(source: SourceConfig): string {
    return join(this.#dataDir, "mirrors", `${source.name}.git`);
  }

  /** How git reaches the source, with its credentials read now (a rotated token is picked up). */
  access(source: SourceConfig): GitAccess {
    const token = source.credentials && readSecret(source.credentials);
    return { ...gitAccess(source.url, source.kind, token, source.username), launcher: this.#launcher };
  }

  /** Fetches the source into its mirror. */
  fetch(source: SourceConfig): Promise<void> {
    return this.#fetch(source, "all");
  }

  /**
   * Fetches what runs of `events` will check out: the refs they moved (a push's ref, a pull request's
   * head ref), or everything when an event names none.
   */
  fetchFor(source: SourceConfig, events: readonly TriggerEvent[]): Promise<void> {
    const refs = events.map((event) => refOf(source.kind, event));
    return this.#fetch(source, refs.every((ref) => ref !== undefined) ? refs : "all");
  }

  /**
   * One fetch at a time per mirror; a fetch asked for while another waits its turn joins it (so a
   * burst of deliveries, or replays, queues at most one fetch behind the one under way).
   */
  #fetch(source: SourceConfig, refs: readonly string[] | "all"): Promise<void> {
    const waiting = this.#waiting.get(source.name);
    if (waiting) {
      waiting.refs =
        waiting.refs === "all" || refs === "all" ? "all" : [...new Set([...waiting.refs, ...refs])];
      return waiting.done;
    }
    const mirror = this.mirrorOf(source);
    const entry: { refs: readonly string[] | "all"; done: Promise<void> } = { refs, done: Promise.resolve() };
    this.#waiting.set(source.name, entry);
    entry.done = this.#serial(source.name, async () => {
      if (this.#waiting.get(source.name) === entry) this.#waiting.delete(source.name);
      const access = this.access(source);
      if (entry.refs !== "all" && existsSync(join(mirror, "HEAD")))
        await fetchRefs(mirror, access, entry.refs);
      else await fetchMirror(mirror, access);
      this.#fetched.set(source.name, mirror);
    });
    return entry.done;
  }

  /** Makes sure the mirror has `sha` (fetching when it lacks it). */
  async ensure(source: SourceConfig, sha: string): Promise<void> {
    const mirror = this.mirrorOf(source);
    const has =
      existsSync(join(mirror, "HEAD")) &&
      (await git(["-C", mirror, "cat-file", "-e", `${sha}^{commit}`], { launcher: this.#launcher }).then(
        () => true,
        () => false,
      ));
    if (!has) await this.fetch(source);
  }

  /** A file's text at a commit of the source. */
  async readAt(source: SourceConfig, sha: string, path: string): Promise<string> {
    await this.ensure(source, sha);
    return readAt(this.mirrorOf(source), sha, path, this.#launcher);
  }

  /**
   * A checkout of `sha` for the run with idempotency key `runKey`; the same key gives the same
   * directory. It borrows the mirror's objects (nothing is copied): its repository's files, written
   * while the mirror's fetch under way if any (a webhook's delivery starts one as it arrives) goes
   * on, then a `git checkout` once that fetch is done; a commit the mirror still lacks is fetched,
   * and checked out again. Made beside its place, moved there once whole.
   */
  async prepare(source: SourceConfig, sha: string, runKey: string): Promise<string> {
    const dir = join(this.#dataDir, "workspaces", runKey.replace(/[^A-Za-z0-9_-]+/g, "-"));
    // A run already started from this key runs in it: leave it as it is.
    if (existsSync(dir)) return dir;
    const making = `${dir}.new`;
    try {
      borrowingRepository(this.mirrorOf(source), making);
      await this.#locks.get(source.name);
      try {
        await checkout(making, sha, this.#launcher);
      } catch {
        await this.fetch(source);
        await checkout(making, sha, this.#launcher);
      }
      renameSync(making, dir);
    } catch (error) {
      this.remove(making);
      throw error;
    }
    return dir;
  }

  remove(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * Removes the workspaces of runs that ended: at once after success or cancel, `keep_failed` after
   * a failure, and at once when the run is gone (pruned by retention). First, git's upkeep of the
   * mirrors fetched since the last sweep.
   */
  async sweep(runs: RunService): Promise<number> {
    for (const [name, mirror] of this.#fetched) {
      this.#fetched.delete(name);
      await this.#serial(name, () => maintainMirror(mirror, this.#launcher)).catch(() => {});
    }
    let removed = 0;
    for (const verdict of await this.#store.workspaces()) {
      if (verdict.workspace === null) continue;
      let gone = verdict.runId === null;
      if (!gone) {
        try {
          const run = await runs.show(verdict.runId!);
          const ended = run.endedAt ?? (FINAL_STATUSES.includes(run.status) ? run.createdAt : undefined);
          if (CLEAN_END.includes(run.status)) gone = true;
          else if (ended !== undefined || run.status === "failed" || run.status === "needs_attention") {
            const source = (await this.#store.getEvent(verdict.key))?.source ?? "";
            gone = this.#clock.now() - (ended ?? verdict.at) >= this.#keepFailedMs(source);
          }
        } catch {
          gone = true;
        }
      }
      if (!gone) continue;
      this.remove(verdict.workspace);
      await this.#store.clearWorkspace(verdict.key, verdict.pipeline);
      removed++;
    }
    return removed;
  }

  #serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(name) ?? Promise.resolve();
    const next = before.then(work, work);
    this.#locks.set(
      name,
      next.catch(() => {}),
    );
    return next;
  }
}

/** The ref of the source whose head is the commit a run of `event` checks out, when one names it. */
function refOf(kind: SourceConfig["kind"], event: TriggerEvent): string | undefined {
  const pullRequest = pullRequestOf(event);
  if (event.kind === "push") return event.ref;
  if (pullRequest === undefined || kind === "git") return undefined;
  return kind === "gitlab" ? `refs/merge-requests/${pullRequest}/head` : `refs/pull/${pullRequest}/head`;
}
