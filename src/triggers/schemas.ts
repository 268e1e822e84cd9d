/**
 * What `GET /api/v1/triggers` and `slipway triggers` show: sources and their polls, recent events with
 * verdicts, schedules, reports to forges.
 */
import { z } from "zod";

export const verdictSummary = z.object({
  pipeline: z.string(),
  verdict: z.enum(["started", "ignored", "awaiting_approval"]),
  /** Why it was ignored or waits. */
  reason: z.string().nullable(),
  runId: z.string().nullable(),
  at: z.number(),
});

export const triggersResponse = z.object({
  sources: z.array(
    z.object({
      name: z.string(),
      kind: z.string(),
      /** The URL without any user or password in it. */
      url: z.string(),
      pollMs: z.number(),
      lastPollAt: z.number().nullable(),
      /** `ok`, or what went wrong and how long the source backs off. */
      outcome: z.string().nullable(),
      failures: z.number(),
      nextPollAt: z.number().nullable(),
      /** Branches and tags seen at the last successful poll. */
      refs: z.number(),
      /**
       * The worker that polls it now (the executor id holding its lease: one of a cluster does); null
       * when none holds it. Absent from older servers.
       */
      polledBy: z.string().nullable().optional(),
    }),
  ),
  /** Newest first. */
  events: z.array(
    z.object({
      key: z.string(),
      source: z.string(),
      kind: z.string(),
      seenAt: z.number(),
      /** `main@1a2b3c4d`, `#12 opened`, `!testme by ana`... */
      summary: z.string(),
      verdicts: z.array(verdictSummary),
    }),
  ),
  /** Events some pipeline waits to be approved for. */
  awaitingApproval: z.array(
    z.object({ key: z.string(), pipeline: z.string(), reason: z.string().nullable() }),
  ),
  schedules: z.array(
    z.object({
      source: z.string(),
      pipeline: z.string(),
      cron: z.string(),
      timeZone: z.string(),
      /** The last minute it fired for. */
      lastFiredFor: z.number().nullable(),
    }),
  ),
  /** What sources with `report:` told their forges lately, newest first; `error` when a call failed. */
  reports: z.array(
    z.object({
      key: z.string(),
      source: z.string(),
      pipeline: z.string(),
      runId: z.string().nullable(),
      /** The last commit status the forge accepted. */
      state: z.string().nullable(),
      /** A reply still to post. */
      replyPending: z.boolean(),
      done: z.boolean(),
      failures: z.number(),
      error: z.string().nullable(),
      at: z.number(),
    }),
  ),
});
export type TriggersResponse = z.infer<typeof triggersResponse>;

/** What the HTTP app and the CLI ask of triggers. */
export interface TriggerView {
  status(options?: { limit?: number }): Promise<TriggersResponse>;
}
