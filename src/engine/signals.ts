/**
 * Accepting signals: each is checked against its run (it exists, has not ended, the payload fits
 * the actions waiting for that name) and the ones that pass are persisted, a batch at a time.
 */
import { outputValues, type Saga } from "../definition/saga.js";
import type { ActionDefinition } from "../definition/types.js";
import { NotFoundError, SlipwayError, ValidationError } from "../errors.js";
import { assertJson } from "../json.js";
import { schemaIssues } from "../problems.js";
import {
  FINAL_STATUSES,
  getRunsOf,
  type NewSignal,
  type RunRecord,
  type SignalRecord,
  type Storage,
} from "../storage/types.js";
import { CHILD_SIGNAL } from "./child-steps.js";
import type { SagaRegistry } from "./registry.js";

/** A signal persisted, with the run it was checked against. */
export interface AcceptedSignal {
  signal: SignalRecord;
  run: RunRecord;
}

/** One read of every run signalled, then one write of the signals that pass; errors in place. */
export async function acceptSignals(
  storage: Storage,
  registry: SagaRegistry,
  requests: NewSignal[],
): Promise<(AcceptedSignal | Error)[]> {
  const ids = requests.map((r) => r.runId);
  const records = await getRunsOf(storage, ids);
  const checked = requests.map((request, i): RunRecord | Error => {
    try {
      return checkSignal(registry, request, records[i]);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  });
  const accepted = requests.filter((_, i) => !(checked[i] instanceof Error));
  const signals = accepted.length > 0 ? await storage.addSignals(accepted) : [];
  let next = 0;
  return checked.map((run) => (run instanceof Error ? run : { signal: signals[next++]!, run }));
}

/** Why a signal cannot be sent, thrown; else the run it goes to. */
function checkSignal(registry: SagaRegistry, request: NewSignal, run: RunRecord | undefined): RunRecord {
  const { runId, name, payload } = request;
  if (!run) throw new NotFoundError(`no run ${runId}`);
  if (name.startsWith(CHILD_SIGNAL))
    throw new ValidationError(
      "invalid_input",
      `signal "${name}": names starting with "${CHILD_SIGNAL}" are reserved for the ends of child runs`,
    );
  if (FINAL_STATUSES.includes(run.status))
    throw new SlipwayError(
      "conflict",
      `run ${runId} has already ended (${run.status}); signal "${name}" not delivered`,
    );
  assertJson(payload, `payload of signal "${name}"`);
  const saga = registry.get(run.saga, run.version);
  for (const action of saga ? signalWaitsOf(saga) : []) {
    if (action.signalName !== name || !action.outputSchema) continue;
    const parsed = action.outputSchema.safeParse(
      outputValues(action, action.fromPayload ? action.fromPayload(payload) : payload),
    );
    if (!parsed.success) {
      const detail = schemaIssues(parsed.error.issues, "(payload)").join("; ");
      throw new ValidationError(
        "invalid_input",
        `payload of signal "${name}" does not fit action "${action.name}": ${detail}`,
      );
    }
  }
  return run;
}

const signalWaits = new WeakMap<Saga, ActionDefinition[]>();

/** A saga's signal waits, those inside groups' bodies included (each iteration or item waits the same way). */
function signalWaitsOf(saga: Saga): ActionDefinition[] {
  let waits = signalWaits.get(saga);
  if (!waits) {
    waits = [...saga.actions.values()]
      .flatMap((a) => (a.group ? [...a.group.actions.values()] : [a]))
      .filter((a) => a.kind === "signal");
    signalWaits.set(saga, waits);
  }
  return waits;
}
