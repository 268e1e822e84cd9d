/** The trigger store in memory (tests, and the memory backend's `triggers()`). */
import type { Json } from "../json.js";
import type {
  LeaseRecord,
  ReportRecord,
  SourceStateRecord,
  TriggerEventRecord,
  TriggerStore,
  VerdictRecord,
} from "./triggers.js";

const copy = <T>(value: T): T => structuredClone(value);

export class MemoryTriggerStore implements TriggerStore {
  readonly #events = new Map<string, TriggerEventRecord>();
  readonly #verdicts = new Map<string, VerdictRecord>();
  readonly #deliveries = new Set<string>();
  readonly #sources = new Map<string, SourceStateRecord>();
  readonly #firings = new Map<string, number>();
  readonly #approvals = new Set<string>();
  readonly #reports = new Map<string, ReportRecord>();
  readonly #leases = new Map<string, LeaseRecord>();

  async recordEvent(event: TriggerEventRecord): Promise<boolean> {
    if (this.#events.has(event.key)) return false;
    this.#events.set(event.key, copy(event));
    return true;
  }

  async getEvent(key: string): Promise<TriggerEventRecord | undefined> {
    const event = this.#events.get(key);
    return event && copy(event);
  }

  async putVerdict(verdict: VerdictRecord): Promise<void> {
    this.#verdicts.set(JSON.stringify([verdict.key, verdict.pipeline]), copy(verdict));
  }

  async verdicts(key: string): Promise<VerdictRecord[]> {
    return [...this.#verdicts.values()]
      .filter((v) => v.key === key)
      .sort((a, b) => a.pipeline.localeCompare(b.pipeline))
      .map(copy);
  }

  async recentEvents(limit: number, source?: string) {
    const events = [...this.#events.values()]
      .filter((e) => source === undefined || e.source === source)
      .sort((a, b) => b.seenAt - a.seenAt || (a.key < b.key ? 1 : -1))
      .slice(0, limit);
    return Promise.all(events.map(async (e) => ({ ...copy(e), verdicts: await this.verdicts(e.key) })));
  }

  async workspaces(): Promise<VerdictRecord[]> {
    return [...this.#verdicts.values()].filter((v) => v.workspace !== null).map(copy);
  }

  async clearWorkspace(key: string, pipeline: string): Promise<void> {
    const verdict = this.#verdicts.get(JSON.stringify([key, pipeline]));
    if (verdict) verdict.workspace = null;
  }

  async recordDelivery(source: string, delivery: string): Promise<boolean> {
    const id = JSON.stringify([source, delivery]);
    if (this.#deliveries.has(id)) return false;
    this.#deliveries.add(id);
    return true;
  }

  async getSourceState(source: string): Promise<SourceStateRecord | undefined> {
    const state = this.#sources.get(source);
    return state && copy(state);
  }

  async putSourceState(state: SourceStateRecord): Promise<void> {
    this.#sources.set(state.source, copy({ ...state, extra: state.extra as Json }));
  }

  async listSourceStates(): Promise<SourceStateRecord[]> {
    return [...this.#sources.values()].sort((a, b) => a.source.localeCompare(b.source)).map(copy);
  }

  async approve(source: string, number: number, sha: string): Promise<void> {
    this.#approvals.add(JSON.stringify([source, number, sha]));
  }

  async approvals(source: string, number: number): Promise<string[]> {
    return [...this.#approvals]
      .map((text) => JSON.parse(text) as [string, number, string])
      .filter(([s, n]) => s === source && n === number)
      .map(([, , sha]) => sha)
      .sort();
  }

  async lastFiring(schedule: string): Promise<number | undefined> {
    return this.#firings.get(schedule);
  }

  async claimFiring(schedule: string, minute: number): Promise<boolean> {
    const last = this.#firings.get(schedule);
    if (last !== undefined && last >= minute) return false;
    this.#firings.set(schedule, minute);
    return true;
  }

  async recordReport(report: ReportRecord): Promise<boolean> {
    const id = JSON.stringify([report.key, report.pipeline]);
    if (this.#reports.has(id)) return false;
    this.#reports.set(id, copy(report));
    return true;
  }

  async putReport(report: ReportRecord): Promise<void> {
    this.#reports.set(JSON.stringify([report.key, report.pipeline]), copy(report));
  }

  async dueReports(now: number, limit: number): Promise<ReportRecord[]> {
    return [...this.#reports.values()]
      .filter((r) => !r.done && r.nextAt <= now)
      .sort((a, b) => a.nextAt - b.nextAt)
      .slice(0, limit)
      .map(copy);
  }

  async recentReports(limit: number): Promise<ReportRecord[]> {
    return [...this.#reports.values()]
      .sort((a, b) => b.at - a.at)
      .slice(0, limit)
      .map(copy);
  }

  async takeLease(name: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    const lease = this.#leases.get(name);
    if (lease && lease.owner !== owner && lease.expiresAt > now) return false;
    this.#leases.set(name, { name, owner, expiresAt: now + leaseMs });
    return true;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    if (this.#leases.get(name)?.owner === owner) this.#leases.delete(name);
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return [...this.#leases.values()].sort((a, b) => a.name.localeCompare(b.name)).map(copy);
  }
}
