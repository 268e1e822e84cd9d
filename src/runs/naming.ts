/**
 * Names for runs submitted with a `{attempt}` pattern: the attempt is one more than the highest among
 * stored runs' names and names being started now, so two submissions at once never get the same one.
 */
import { type CompiledRun, runNameOf } from "../pipeline/compile.js";
import { type AttemptPattern, attemptIn } from "../pipeline/run-name.js";
import type { Storage } from "../storage/types.js";

export class RunNamer {
  /** Names given to runs not stored yet. */
  readonly #starting = new Set<string>();
  /** Namings with `{attempt}` one at a time: each sees the names the ones before it gave. */
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * The run's name (see `runNameOf`), held until `release` (call it once the run is stored, or failed
   * to start). Refusals (unknown placeholders, MAX_RUN_NAME) throw.
   */
  async name(
    storage: Storage,
    compiled: CompiledRun,
    given: string | undefined,
  ): Promise<{ name: string | undefined; release: () => void }> {
    if (given === undefined || !given.includes("{attempt}")) {
      return { name: runNameOf(compiled, given), release: () => {} };
    }
    const naming = this.#queue.then(async () => {
      // Names held before the stored names are read: a run stored meanwhile is among the one or the other.
      const held = [...this.#starting];
      const stored = (await storage.listRuns({})).flatMap((r) => (r.runName === null ? [] : [r.runName]));
      const next = (pattern: AttemptPattern) =>
        1 + Math.max(0, ...[...stored, ...held].map((n) => attemptIn(n, pattern) ?? 0));
      const name = runNameOf(compiled, given, next);
      if (name !== undefined) this.#starting.add(name);
      return name;
    });
    this.#queue = naming.catch(() => {});
    const name = await naming;
    return { name, release: () => name !== undefined && this.#starting.delete(name) };
  }
}
