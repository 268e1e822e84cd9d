/**
 * Accepting signals: each is checked against its execution (it exists, has not ended, the payload fits
 * the actions waiting for that name) and the ones that pass are persisted, a batch at a time.
 */
import { NotFoundError, SlipwayError, ValidationError } from "../errors.js";
import { assertJson } from "../json.js";
import {
  type ExecutionRecord,
  FINAL_STATUSES,
  type NewSignal,
  type SignalRecord,
  type Storage,
} from "../storage/types.js";
import type { SagaRegistry } from "./registry.js";

/** A signal persisted, with the execution it was checked against. */
export interface AcceptedSignal {
  signal: SignalRecord;
  execution: ExecutionRecord;
}

/** One read of every execution signalled, then one write of the signals that pass; errors in place. */
export async function acceptSignals(
  storage: Storage,
  registry: SagaRegistry,
  requests: NewSignal[],
): Promise<(AcceptedSignal | Error)[]> {
  const ids = requests.map((r) => r.executionId);
  const records = storage.getExecutions
    ? await storage.getExecutions(ids)
    : await Promise.all(ids.map((id) => storage.getExecution(id)));
  const checked = requests.map((request, i): ExecutionRecord | Error => {
    try {
      return checkSignal(registry, request, records[i]);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  });
  const accepted = requests.filter((_, i) => !(checked[i] instanceof Error));
  const signals = accepted.length > 0 ? await storage.addSignals(accepted) : [];
  let next = 0;
  return checked.map((execution) =>
    execution instanceof Error ? execution : { signal: signals[next++]!, execution },
  );
}

/** Why a signal cannot be sent, thrown; else the execution it goes to. */
function checkSignal(
  registry: SagaRegistry,
  request: NewSignal,
  execution: ExecutionRecord | undefined,
): ExecutionRecord {
  const { executionId, name, payload } = request;
  if (!execution) throw new NotFoundError(`no execution ${executionId}`);
  if (FINAL_STATUSES.includes(execution.status))
    throw new SlipwayError(
      "conflict",
      `execution ${executionId} has already ended (${execution.status}); signal "${name}" not delivered`,
    );
  assertJson(payload, `payload of signal "${name}"`);
  const saga = registry.get(execution.saga, execution.version);
  for (const action of saga?.actions.values() ?? []) {
    if (action.kind !== "signal" || action.signalName !== name || !action.outputSchema) continue;
    const parsed = action.outputSchema.safeParse(action.fromPayload ? action.fromPayload(payload) : payload);
    if (!parsed.success) {
      const detail = parsed.error.issues
        .map((i) => `${i.path.join(".") || "(payload)"}: ${i.message}`)
        .join("; ");
      throw new ValidationError(
        "invalid_input",
        `payload of signal "${name}" does not fit action "${action.name}": ${detail}`,
      );
    }
  }
  return execution;
}
