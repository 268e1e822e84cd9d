/**
 * The trigger store in PostgreSQL: events, verdicts, deliveries, poll state, schedules, reports to
 * forges, leases. "Once" is decided by the database (a unique key, a conditional upsert), so several
 * servers sharing it act on each event, delivery and scheduled minute once, and one polls each source.
 */
import type pg from "pg";
import { toJsonText } from "../json-text.js";
import {
  type EventRow,
  eventOf,
  type ReportRow,
  reportOf,
  type SourceRow,
  sourceOf,
  type VerdictRow,
  verdictOf,
} from "../trigger-rows.js";
import type { ReportRecord, TriggerStore } from "../triggers.js";

const REPORT_COLUMNS =
  "key, pipeline, source, run_id, sha, number, reply, state, done, failures, error, next_at, at";
const REPORT_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13";

const reportArgs = (r: ReportRecord) => [
  r.key,
  r.pipeline,
  r.source,
  r.runId,
  r.sha,
  r.number,
  r.reply,
  r.state,
  r.done,
  r.failures,
  r.error,
  r.nextAt,
  r.at,
];

/** One statement on the database (the storage's, which reports an unreachable database as such). */
export type Query = <R extends pg.QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<pg.QueryResult<R>>;

/** The store over a migrated database. */
export function postgresTriggerStore(query: Query): TriggerStore {
  const rows = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    (await query<R>(text, values)).rows;
  const changed = async (text: string, values: unknown[]) => (await query(text, values)).rowCount === 1;
  const verdictsOf = async (key: string) =>
    (await rows<VerdictRow>("SELECT * FROM trigger_verdicts WHERE key = $1 ORDER BY pipeline", [key])).map(
      verdictOf,
    );
  return {
    async recordEvent(event) {
      const text = toJsonText(event.event, "the event");
      return changed(
        `INSERT INTO trigger_events (key, source, kind, event, seen_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key) DO NOTHING`,
        [event.key, event.source, event.kind, text, event.seenAt],
      );
    },
    async getEvent(key) {
      const [row] = await rows<EventRow>("SELECT * FROM trigger_events WHERE key = $1", [key]);
      return row && eventOf(row);
    },
    async putVerdict(v) {
      await query(
        `INSERT INTO trigger_verdicts (key, pipeline, verdict, reason, run_id, workspace, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (key, pipeline) DO UPDATE SET verdict = excluded.verdict, reason = excluded.reason,
           run_id = excluded.run_id, workspace = excluded.workspace, at = excluded.at`,
        [v.key, v.pipeline, v.verdict, v.reason, v.runId, v.workspace, v.at],
      );
    },
    verdicts: verdictsOf,
    async recentEvents(limit, source) {
      const events =
        source === undefined
          ? await rows<EventRow>("SELECT * FROM trigger_events ORDER BY seen_at DESC, key DESC LIMIT $1", [
              limit,
            ])
          : await rows<EventRow>(
              "SELECT * FROM trigger_events WHERE source = $1 ORDER BY seen_at DESC, key DESC LIMIT $2",
              [source, limit],
            );
      return Promise.all(
        events.map(async (row) => ({ ...eventOf(row), verdicts: await verdictsOf(row.key) })),
      );
    },
    async workspaces() {
      return (await rows<VerdictRow>("SELECT * FROM trigger_verdicts WHERE workspace IS NOT NULL", [])).map(
        verdictOf,
      );
    },
    async clearWorkspace(key, pipeline) {
      await query("UPDATE trigger_verdicts SET workspace = NULL WHERE key = $1 AND pipeline = $2", [
        key,
        pipeline,
      ]);
    },
    async recordDelivery(source, delivery, at) {
      return changed(
        "INSERT INTO trigger_deliveries (source, delivery, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [source, delivery, at],
      );
    },
    async getSourceState(source) {
      const [row] = await rows<SourceRow>("SELECT * FROM trigger_sources WHERE source = $1", [source]);
      return row && sourceOf(row);
    },
    async putSourceState(s) {
      await query(
        `INSERT INTO trigger_sources (source, refs, last_poll_at, outcome, failures, next_poll_at, extra)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (source) DO UPDATE SET refs = excluded.refs, last_poll_at = excluded.last_poll_at,
           outcome = excluded.outcome, failures = excluded.failures, next_poll_at = excluded.next_poll_at,
           extra = excluded.extra`,
        [
          s.source,
          JSON.stringify(s.refs),
          s.lastPollAt,
          s.outcome,
          s.failures,
          s.nextPollAt,
          toJsonText(s.extra, "the source's state"),
        ],
      );
    },
    async listSourceStates() {
      return (await rows<SourceRow>("SELECT * FROM trigger_sources ORDER BY source", [])).map(sourceOf);
    },
    async approve(source, number, sha, by, at) {
      await query(
        `INSERT INTO trigger_approvals (source, number, sha, by, at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING`,
        [source, number, sha, by, at],
      );
    },
    async approvals(source, number) {
      return (
        await rows<{ sha: string }>(
          "SELECT sha FROM trigger_approvals WHERE source = $1 AND number = $2 ORDER BY sha",
          [source, number],
        )
      ).map((row) => row.sha);
    },
    async lastFiring(schedule) {
      const [row] = await rows<{ m: number }>(
        "SELECT last_minute AS m FROM trigger_schedules WHERE schedule = $1",
        [schedule],
      );
      return row?.m;
    },
    async claimFiring(schedule, minute) {
      // One statement, so two servers claiming the same minute cannot both win.
      return changed(
        `INSERT INTO trigger_schedules (schedule, last_minute) VALUES ($1, $2)
         ON CONFLICT (schedule) DO UPDATE SET last_minute = excluded.last_minute
         WHERE excluded.last_minute > trigger_schedules.last_minute`,
        [schedule, minute],
      );
    },
    async recordReport(report) {
      return changed(
        `INSERT INTO trigger_reports (${REPORT_COLUMNS}) VALUES (${REPORT_VALUES}) ON CONFLICT DO NOTHING`,
        reportArgs(report),
      );
    },
    async putReport(report) {
      await query(
        `INSERT INTO trigger_reports (${REPORT_COLUMNS}) VALUES (${REPORT_VALUES})
         ON CONFLICT (key, pipeline) DO UPDATE SET source = excluded.source, run_id = excluded.run_id,
           sha = excluded.sha, number = excluded.number, reply = excluded.reply, state = excluded.state,
           done = excluded.done, failures = excluded.failures, error = excluded.error,
           next_at = excluded.next_at, at = excluded.at`,
        reportArgs(report),
      );
    },
    async dueReports(now, limit) {
      return (
        await rows<ReportRow>(
          "SELECT * FROM trigger_reports WHERE NOT done AND next_at <= $1 ORDER BY next_at LIMIT $2",
          [now, limit],
        )
      ).map(reportOf);
    },
    async recentReports(limit) {
      return (await rows<ReportRow>("SELECT * FROM trigger_reports ORDER BY at DESC LIMIT $1", [limit])).map(
        reportOf,
      );
    },
    async takeLease(name, owner, now, leaseMs) {
      // One statement: taken when free, expired or already the owner's; the row is left alone otherwise
      // (the conflicting row is locked, so two takers of an expired lease serialize and one wins).
      return changed(
        `INSERT INTO trigger_leases (name, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE trigger_leases.owner = excluded.owner OR trigger_leases.expires_at <= $4`,
        [name, owner, now + leaseMs, now],
      );
    },
    async releaseLease(name, owner) {
      await query("DELETE FROM trigger_leases WHERE name = $1 AND owner = $2", [name, owner]);
    },
    async listLeases() {
      return (
        await rows<{ name: string; owner: string; expires_at: string | number }>(
          "SELECT name, owner, expires_at FROM trigger_leases ORDER BY name",
          [],
        )
      ).map((row) => ({ name: row.name, owner: row.owner, expiresAt: Number(row.expires_at) }));
    },
  };
}
