/**
 * The runs this process hosts (its executor accepts only these) and the sagas they run: a saga is
 * compiled once per pipeline text and plan shape, registered with the executor once, shared by every
 * run of it held here whatever its inputs, and unregistered when the last of them leaves.
 */
import type { Saga } from "../definition/saga.js";
import type { Executor } from "../engine/executor.js";
import type { CompiledRun } from "../pipeline/compile.js";
import { markFollowed } from "./liveness.js";

interface Hosted {
  /** The saga's `name@version`. */
  saga: string;
  /** Removes the follower mark (liveness.ts), once written. */
  unmark: (() => void) | undefined;
  /**
   * The seq of the run's last event when it was taken again (retried, resumed): an end told up to
   * there is the end it was taken from, told late (storage answers a commit after a disk flush that
   * readers do not wait for), not an end of what it runs now.
   */
  takenAfter: number;
}

export class HostedRuns {
  readonly #executor: Pick<Executor, "register" | "unregister">;
  readonly #dataDir: string;
  readonly #runs = new Map<string, Hosted>();
  /** Sagas registered with the executor, by `name@version`, with the runs held here that use each. */
  readonly #sagas = new Map<string, { saga: Saga; users: Set<string> }>();

  constructor(executor: Pick<Executor, "register" | "unregister">, dataDir: string) {
    this.#executor = executor;
    this.#dataDir = dataDir;
  }

  has(id: string): boolean {
    return this.#runs.has(id);
  }

  ids(): string[] {
    return [...this.#runs.keys()];
  }

  /** The saga registered here for a name and version, shared by the runs compiled to it. */
  readonly known = (name: string, version: number): Saga | undefined =>
    this.#sagas.get(`${name}@${version}`)?.saga;

  /** The saga of a compiled run, registered once per plan (the executor insists on one instance). */
  register(compiled: CompiledRun): Saga {
    const key = keyOf(compiled.saga);
    const known = this.#sagas.get(key);
    if (known) return known.saga;
    this.#executor.register(compiled.saga);
    this.#sagas.set(key, { saga: compiled.saga, users: new Set() });
    return compiled.saga;
  }

  /**
   * Hosts the run here: `resume` elsewhere leaves it alone (its owner says so, or once parked its
   * mark). `takenAfter`: see {@link Hosted.takenAfter}.
   */
  host(id: string, saga: Saga, options: { mark: boolean; takenAfter?: number | undefined }): void {
    if (this.#runs.has(id)) return;
    const key = keyOf(saga);
    this.#runs.set(id, { saga: key, unmark: undefined, takenAfter: options.takenAfter ?? 0 });
    this.#sagas.get(key)?.users.add(id);
    if (options.mark) this.mark(id);
  }

  /** A run hosted here taken again from its end (retried, resumed): see {@link Hosted.takenAfter}. */
  takenAgain(id: string, takenAfter: number): void {
    const hosted = this.#runs.get(id);
    if (hosted) hosted.takenAfter = Math.max(hosted.takenAfter, takenAfter);
  }

  /** Writes the follower mark of a run hosted here, once. */
  mark(id: string): void {
    const hosted = this.#runs.get(id);
    if (hosted && hosted.unmark === undefined) hosted.unmark = markFollowed(this.#dataDir, [id]);
  }

  /** An end of a hosted run was told: unhosts it unless it is the end it was taken from. */
  ended(id: string, seq: number | undefined): void {
    const hosted = this.#runs.get(id);
    if (hosted && (seq === undefined || seq > hosted.takenAfter)) this.unhost(id);
  }

  /** The run is no longer run here; its saga goes too once no run held here uses it. */
  unhost(id: string): void {
    const hosted = this.#runs.get(id);
    if (!hosted) return;
    hosted.unmark?.();
    this.#runs.delete(id);
    this.#sagas.get(hosted.saga)?.users.delete(id);
    this.#forgetUnused(hosted.saga);
  }

  /** A saga registered for a run that is not hosted here after all (queued for any worker). */
  forgetUnused(saga: Saga): void {
    this.#forgetUnused(keyOf(saga));
  }

  /** A server up for weeks sees many pipeline texts: keep only the sagas of runs it still holds. */
  #forgetUnused(key: string): void {
    const entry = this.#sagas.get(key);
    if (!entry || entry.users.size > 0) return;
    this.#sagas.delete(key);
    this.#executor.unregister(entry.saga);
  }
}

function keyOf(saga: Saga): string {
  return `${saga.name}@${saga.version}`;
}
