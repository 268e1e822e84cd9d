/** Child process of the crash conformance test: commits transitions forever until the parent SIGKILLs it. */
import type { Storage, Transition } from "../storage/types.js";
import { type CrashChildPayload, crashRunIds, crashTransition, toImportSpecifier } from "./crash-workload.js";
import { createTransition, runRecord } from "./records.js";

const payload = JSON.parse(process.argv[2] ?? "null") as CrashChildPayload;
const loaded = (await import(toImportSpecifier(payload.module))) as Record<string, unknown>;
const factory = loaded[payload.exportName];
if (typeof factory !== "function") {
  throw new Error(`${payload.module} does not export a function ${payload.exportName}`);
}
const storage = (await factory(payload.arg)) as Storage;
await storage.init();

const owner = `crash-child-${process.pid}`;
const ids = crashRunIds(payload.saga);
const counters = new Map<string, number>();
for (const id of ids) {
  const existing = await storage.getRun(id);
  if (!existing) {
    const [result] = await storage.commit([
      createTransition(runRecord(id, { saga: payload.saga, wakeAt: 0 }), owner),
    ]);
    if (result !== "ok") throw new Error(`create ${id}: ${result}`);
    counters.set(id, 0);
  } else {
    // The previous child was killed while owning it: take over, as recovery would.
    const snapshot = await storage.claim({
      runId: id,
      owner,
      takeOverFrom: existing.owner === null ? [] : [existing.owner],
    });
    if (!snapshot) throw new Error(`claim ${id} failed`);
    counters.set(id, snapshot.run.wakeAt ?? 0);
  }
}

let announced = false;
for (;;) {
  const batch: Transition[] = [];
  for (const id of ids) {
    const counter = counters.get(id)! + 1;
    const signal = await storage.addSignal({
      runId: id,
      name: "tick",
      payload: { counter },
      createdAt: Date.now(),
    });
    batch.push(crashTransition(id, owner, counter, signal.seq));
  }
  const results = await storage.commit(batch);
  if (results.some((result) => result !== "ok")) throw new Error(`commit: ${results.join(", ")}`);
  for (const id of ids) counters.set(id, counters.get(id)! + 1);
  if (!announced) {
    // The parent starts its kill timer once at least one batch is durable.
    process.stdout.write("ready\n");
    announced = true;
  }
}
