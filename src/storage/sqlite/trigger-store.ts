/**
 * The trigger store in SQLite (tables of migrations 0004, 0007 and 0011): events, verdicts, deliveries,
 * poll state, schedules, reports to forges, leases.
 */
import type Database from "better-sqlite3";
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
import type { LeaseRecord, ReportRecord, TriggerStore } from "../triggers.js";

/** The store over an open, migrated database. */
export function sqliteTriggerStore(db: Database.Database): TriggerStore {
  const insertEvent = db.prepare(
    "INSERT OR IGNORE INTO trigger_events (key, source, kind, event, seen_at) VALUES (?, ?, ?, ?, ?)",
  );
  const getEvent = db.prepare("SELECT * FROM trigger_events WHERE key = ?");
  const putVerdict = db.prepare(
    `INSERT INTO trigger_verdicts (key, pipeline, verdict, reason, run_id, workspace, at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key, pipeline) DO UPDATE SET verdict = excluded.verdict, reason = excluded.reason,
       run_id = excluded.run_id, workspace = excluded.workspace, at = excluded.at`,
  );
  const verdicts = db.prepare("SELECT * FROM trigger_verdicts WHERE key = ? ORDER BY pipeline");
  const recentAll = db.prepare("SELECT * FROM trigger_events ORDER BY seen_at DESC, key DESC LIMIT ?");
  const recentOf = db.prepare(
    "SELECT * FROM trigger_events WHERE source = ? ORDER BY seen_at DESC, key DESC LIMIT ?",
  );
  const workspaces = db.prepare("SELECT * FROM trigger_verdicts WHERE workspace IS NOT NULL");
  const clearWorkspace = db.prepare(
    "UPDATE trigger_verdicts SET workspace = NULL WHERE key = ? AND pipeline = ?",
  );
  const insertDelivery = db.prepare(
    "INSERT OR IGNORE INTO trigger_deliveries (source, delivery, at) VALUES (?, ?, ?)",
  );
  const getSource = db.prepare("SELECT * FROM trigger_sources WHERE source = ?");
  const putSource = db.prepare(
    `INSERT INTO trigger_sources (source, refs, last_poll_at, outcome, failures, next_poll_at, extra)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (source) DO UPDATE SET refs = excluded.refs, last_poll_at = excluded.last_poll_at,
       outcome = excluded.outcome, failures = excluded.failures, next_poll_at = excluded.next_poll_at,
       extra = excluded.extra`,
  );
  const listSources = db.prepare("SELECT * FROM trigger_sources ORDER BY source");
  const lastFiring = db.prepare("SELECT last_minute AS m FROM trigger_schedules WHERE schedule = ?");
  // One statement, so two servers claiming the same minute cannot both win.
  const claimFiring = db.prepare(
    `INSERT INTO trigger_schedules (schedule, last_minute) VALUES (?, ?)
     ON CONFLICT (schedule) DO UPDATE SET last_minute = excluded.last_minute
     WHERE excluded.last_minute > trigger_schedules.last_minute`,
  );
  const approve = db.prepare(
    "INSERT OR IGNORE INTO trigger_approvals (source, number, sha, by, at) VALUES (?, ?, ?, ?, ?)",
  );
  const approvals = db.prepare(
    "SELECT sha FROM trigger_approvals WHERE source = ? AND number = ? ORDER BY sha",
  );
  const reportColumns =
    "(key, pipeline, source, run_id, sha, number, reply, state, done, failures, error, next_at, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  const insertReport = db.prepare(`INSERT OR IGNORE INTO trigger_reports ${reportColumns}`);
  const putReport = db.prepare(`INSERT OR REPLACE INTO trigger_reports ${reportColumns}`);
  const dueReports = db.prepare(
    "SELECT * FROM trigger_reports WHERE done = 0 AND next_at <= ? ORDER BY next_at LIMIT ?",
  );
  const recentReports = db.prepare("SELECT * FROM trigger_reports ORDER BY at DESC LIMIT ?");
  // One statement: taken when free, expired or already the owner's; the row is left alone otherwise.
  const takeLease = db.prepare(
    `INSERT INTO trigger_leases (name, owner, expires_at) VALUES (?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
     WHERE trigger_leases.owner = excluded.owner OR trigger_leases.expires_at <= ?`,
  );
  const releaseLease = db.prepare("DELETE FROM trigger_leases WHERE name = ? AND owner = ?");
  const listLeases = db.prepare(
    "SELECT name, owner, expires_at AS expiresAt FROM trigger_leases ORDER BY name",
  );
  const reportArgs = (r: ReportRecord) =>
    [
      r.key,
      r.pipeline,
      r.source,
      r.runId,
      r.sha,
      r.number,
      r.reply,
      r.state,
      r.done ? 1 : 0,
      r.failures,
      r.error,
      r.nextAt,
      r.at,
    ] as const;
  const verdictsOf = (key: string) => (verdicts.all(key) as VerdictRow[]).map(verdictOf);
  return {
    async recordEvent(event) {
      const text = toJsonText(event.event, "the event");
      return insertEvent.run(event.key, event.source, event.kind, text, event.seenAt).changes === 1;
    },
    async getEvent(key) {
      const row = getEvent.get(key) as EventRow | undefined;
      return row && eventOf(row);
    },
    async putVerdict(v) {
      putVerdict.run(v.key, v.pipeline, v.verdict, v.reason, v.runId, v.workspace, v.at);
    },
    async verdicts(key) {
      return verdictsOf(key);
    },
    async recentEvents(limit, source) {
      const rows = (source === undefined ? recentAll.all(limit) : recentOf.all(source, limit)) as EventRow[];
      return rows.map((row) => ({ ...eventOf(row), verdicts: verdictsOf(row.key) }));
    },
    async workspaces() {
      return (workspaces.all() as VerdictRow[]).map(verdictOf);
    },
    async clearWorkspace(key, pipeline) {
      clearWorkspace.run(key, pipeline);
    },
    async recordDelivery(source, delivery, at) {
      return insertDelivery.run(source, delivery, at).changes === 1;
    },
    async getSourceState(source) {
      const row = getSource.get(source) as SourceRow | undefined;
      return row && sourceOf(row);
    },
    async putSourceState(s) {
      putSource.run(
        s.source,
        JSON.stringify(s.refs),
        s.lastPollAt,
        s.outcome,
        s.failures,
        s.nextPollAt,
        toJsonText(s.extra, "the source's state"),
      );
    },
    async listSourceStates() {
      return (listSources.all() as SourceRow[]).map(sourceOf);
    },
    async approve(source, number, sha, by, at) {
      approve.run(source, number, sha, by, at);
    },
    async approvals(source, number) {
      return (approvals.all(source, number) as { sha: string }[]).map((row) => row.sha);
    },
    async lastFiring(schedule) {
      return (lastFiring.get(schedule) as { m: number } | undefined)?.m;
    },
    async claimFiring(schedule, minute) {
      return claimFiring.run(schedule, minute).changes === 1;
    },
    async recordReport(report) {
      return insertReport.run(...reportArgs(report)).changes === 1;
    },
    async putReport(report) {
      putReport.run(...reportArgs(report));
    },
    async dueReports(now, limit) {
      return (dueReports.all(now, limit) as ReportRow[]).map(reportOf);
    },
    async recentReports(limit) {
      return (recentReports.all(limit) as ReportRow[]).map(reportOf);
    },
    async takeLease(name, owner, now, leaseMs) {
      return takeLease.run(name, owner, now + leaseMs, now).changes === 1;
    },
    async releaseLease(name, owner) {
      releaseLease.run(name, owner);
    },
    async listLeases() {
      return listLeases.all() as LeaseRecord[];
    },
  };
}
