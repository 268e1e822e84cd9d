/** Rows of the trigger tables, shared by the SQL backends, mapped back to records. */
import type { Json } from "../json.js";
import type {
  ReportRecord,
  SourceStateRecord,
  TriggerEventRecord,
  Verdict,
  VerdictRecord,
} from "./triggers.js";

export interface EventRow {
  key: string;
  source: string;
  kind: string;
  event: string;
  seen_at: number;
}
export interface VerdictRow {
  key: string;
  pipeline: string;
  verdict: string;
  reason: string | null;
  run_id: string | null;
  workspace: string | null;
  at: number;
}
export interface SourceRow {
  source: string;
  refs: string;
  last_poll_at: number | null;
  outcome: string | null;
  failures: number;
  next_poll_at: number | null;
  extra: string;
}

export interface ReportRow {
  key: string;
  pipeline: string;
  source: string;
  run_id: string | null;
  sha: string | null;
  number: number | null;
  reply: string | null;
  state: string | null;
  /** 0 or 1 in SQLite, a boolean in PostgreSQL. */
  done: number | boolean;
  failures: number;
  error: string | null;
  next_at: number;
  at: number;
}

export const reportOf = (row: ReportRow): ReportRecord => ({
  key: row.key,
  pipeline: row.pipeline,
  source: row.source,
  runId: row.run_id,
  sha: row.sha,
  number: row.number,
  reply: row.reply,
  state: row.state,
  done: row.done === 1 || row.done === true,
  failures: row.failures,
  error: row.error,
  nextAt: row.next_at,
  at: row.at,
});

export const eventOf = (row: EventRow): TriggerEventRecord => ({
  key: row.key,
  source: row.source,
  kind: row.kind,
  event: JSON.parse(row.event) as Json,
  seenAt: row.seen_at,
});
export const verdictOf = (row: VerdictRow): VerdictRecord => ({
  key: row.key,
  pipeline: row.pipeline,
  verdict: row.verdict as Verdict,
  reason: row.reason,
  runId: row.run_id,
  workspace: row.workspace,
  at: row.at,
});
export const sourceOf = (row: SourceRow): SourceStateRecord => ({
  source: row.source,
  refs: JSON.parse(row.refs) as Record<string, string>,
  lastPollAt: row.last_poll_at,
  outcome: row.outcome,
  failures: row.failures,
  nextPollAt: row.next_poll_at,
  extra: JSON.parse(row.extra) as Json,
});
