/** The sagas an executor owns, by name and version, and which stored runs are therefore its own. */
import type { Saga } from "../definition/saga.js";
import type { RunRecord } from "../storage/types.js";

export class SagaRegistry {
  readonly #sagas = new Map<string, Map<number, Saga>>();
  readonly #accept: ((run: RunRecord) => boolean) | undefined;

  constructor(accept: ((run: RunRecord) => boolean) | undefined) {
    this.#accept = accept;
  }

  /** False when that name and version is registered already. */
  register(saga: Saga): boolean {
    let versions = this.#sagas.get(saga.name);
    if (!versions) {
      versions = new Map();
      this.#sagas.set(saga.name, versions);
    }
    if (versions.has(saga.version)) return false;
    versions.set(saga.version, saga);
    return true;
  }

  /**
   * Registers the sagas that `saga`'s child steps start, and theirs, unless that name and version is
   * registered already (an executor that hosts a parent hosts its children).
   */
  registerChildren(saga: Pick<Saga, "actions">): void {
    for (const action of saga.actions.values()) {
      // A group's body may start children too.
      if (action.group) this.registerChildren(action.group);
      const child = action.childSaga as Saga | undefined;
      if (child && this.register(child)) this.registerChildren(child);
    }
  }

  unregister(name: string, version: number): void {
    const versions = this.#sagas.get(name);
    versions?.delete(version);
    if (versions?.size === 0) this.#sagas.delete(name);
  }

  get(name: string, version: number): Saga | undefined {
    return this.#sagas.get(name)?.get(version);
  }

  /** Whether any version of this saga is registered. */
  hasName(name: string): boolean {
    return this.#sagas.has(name);
  }

  /** The versions registered under this name. */
  versions(name: string): number[] {
    return [...(this.#sagas.get(name)?.keys() ?? [])];
  }

  get names(): string[] {
    return [...this.#sagas.keys()];
  }

  /**
   * Whether this executor should take an run: its saga is registered here, and its version too
   * or it is older than the newest registered one (retired: it will need attention). Runs of a
   * newer version are left to the executors that have it.
   */
  runsHere(record: RunRecord): boolean {
    if (this.#accept && !this.#accept(record)) return false;
    const versions = this.#sagas.get(record.saga);
    if (!versions) return false;
    return versions.has(record.version) || record.version < Math.max(...versions.keys());
  }
}
