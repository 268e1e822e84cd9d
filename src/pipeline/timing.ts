/**
 * What a pipeline job records of its wait for admission (`ActionContext.timing`, kept on the event
 * that ends the attempt as `data.timing`): when it asked, when it was granted, and what it waited
 * for, one entry each time the reason changed. `slipway show`'s phases are built from them.
 */
import { z } from "zod";
import { EPSILON } from "../scheduler/policy.js";
import { type Explanation, isLock, lockName } from "../scheduler/types.js";

/** One stretch of an admission wait, from `at` until the next one (or the grant). */
export const admissionWaitSchema = z.object({
  /** When it started waiting for this reason, epoch ms. */
  at: z.number(),
  /** A named lock, a pool (memory, cpu, disk), or `admission`: granted before the queue said why. */
  kind: z.enum(["lock", "pool", "admission"]),
  /** The lock's name (`swarm`), or the pool's (`memory`, `cpu`, `disk`). */
  resource: z.string().optional(),
  /** Who held it when the reason was given (the first holder, oldest first). */
  holder: z.object({ run: z.string(), runName: z.string().nullable(), job: z.string() }).optional(),
  /** Its place in line for that resource, from 1. */
  position: z.number().int().optional(),
  /** Enough was free, but requests ahead of it had reserved it. */
  reserved: z.boolean().optional(),
  /** The queue's own sentence, e.g. "waits for lock swarm (1 of 1 held by run r1 job deploy ...); 2nd in line". */
  message: z.string(),
});
export type AdmissionWait = z.infer<typeof admissionWaitSchema>;

/** An attempt's admission: asked at `at`, granted at `grantedAt` (null: it never was, e.g. cancelled). */
export const admissionTimingSchema = z.object({
  at: z.number(),
  grantedAt: z.number().nullable(),
  waits: z.array(admissionWaitSchema),
});
export type AdmissionTiming = z.infer<typeof admissionTimingSchema>;

/** What `data.timing` of an attempt's ending event holds (only what the attempt recorded). */
export const attemptTimingSchema = z.object({ admission: admissionTimingSchema.optional() });

/** A long wait whose reason keeps changing keeps at most this many stretches (the last absorbs the rest). */
export const MAX_WAITS = 20;

/** The stretch an explanation starts: its first blocker, the one the queue names first. */
export function waitOf(explanation: Explanation, at: number): AdmissionWait {
  const blocker = explanation.blockers[0];
  const resource = blocker?.resource ?? "memory";
  const holder = blocker?.holders[0];
  const reserved = blocker !== undefined && blocker.need <= blocker.free + EPSILON;
  return {
    at,
    kind: isLock(resource) ? "lock" : "pool",
    resource: isLock(resource) ? lockName(resource) : resource,
    ...(holder && { holder: { run: holder.runId, runName: holder.runName, job: holder.job } }),
    ...(blocker && { position: blocker.position }),
    ...(reserved && { reserved: true }),
    message: explanation.reason,
  };
}

/** Whether two stretches wait for the same thing held by the same job (a new place in line is not a new stretch). */
export function sameWait(a: AdmissionWait, b: AdmissionWait): boolean {
  return (
    a.kind === b.kind &&
    a.resource === b.resource &&
    a.holder?.run === b.holder?.run &&
    a.holder?.job === b.holder?.job &&
    a.reserved === b.reserved
  );
}
