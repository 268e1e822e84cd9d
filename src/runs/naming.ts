/**
 * Names for runs submitted with a `{attempt}` pattern: the attempt is one more than the highest among
 * stored runs' names and names given to runs being started now, so two submissions at once never get
 * the same one. (A run that fails to start leaves its attempt unused: the next one skips it.)
 */
import { type CompiledRun, runNameOf } from "../pipeline/compile.js";
import { type AttemptPattern, attemptIn } from "../pipeline/run-name.js";
import type { Storage } from "../storage/types.js";

interface Naming {
  /** Names given to runs not seen stored yet. */
  starting: Set<string>;
  /** Namings with `{attempt}` one at a time: each sees the names the ones before it gave. */
  queue: Promise<unknown>;
}

/** Per database, so every service over one storage counts together. */
const namings = new WeakMap<Storage, Naming>();

/** The run's name (see `runNameOf`); refusals (unknown placeholders, MAX_RUN_NAME) throw. */
export async function nameRun(
  storage: Storage,
  compiled: CompiledRun,
  given: string | undefined,
): Promise<string | undefined> {
  if (given === undefined || !given.includes("{attempt}")) return runNameOf(compiled, given);
  let naming = namings.get(storage);
  if (!naming) {
    naming = { starting: new Set(), queue: Promise.resolve() };
    namings.set(storage, naming);
  }
  const { starting } = naming;
  const named = naming.queue.then(async () => {
    // Names held before the stored names are read: a run stored meanwhile is among the one or the other.
    const held = [...starting];
    const stored = (await storage.listRuns({})).flatMap((r) => (r.runName === null ? [] : [r.runName]));
    for (const name of stored) starting.delete(name);
    const next = (pattern: AttemptPattern) =>
      1 + Math.max(0, ...[...stored, ...held].map((n) => attemptIn(n, pattern) ?? 0));
    const name = runNameOf(compiled, given, next);
    if (name !== undefined) starting.add(name);
    return name;
  });
  naming.queue = named.catch(() => {});
  return named;
}
