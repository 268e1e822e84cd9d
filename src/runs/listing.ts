/** Listing runs, newest first, a page at a time: the filters storage can apply, and the rest. */
import { createHash } from "node:crypto";
import { SlipwayError } from "../errors.js";
import type { RunRecord, Storage } from "../storage/types.js";
import { concurrencyKeyOf, runSummary, triggerOf } from "./records.js";
import type { RunSummary } from "./schemas.js";
import type { ListQuery, RunPage } from "./service.js";

/** The run id an idempotency key stands for: the same key names the same run in every process. */
export function runIdOfKey(key: string): string {
  return `key-${createHash("sha256").update(key, "utf8").digest("hex").slice(0, 24)}`;
}

export async function listRuns(
  storage: Storage,
  query: Omit<ListQuery, "limit" | "cursor"> = {},
): Promise<RunSummary[]> {
  if (query.key !== undefined) {
    const record = await storage.getRun(runIdOfKey(query.key));
    return record && matches(record, query) ? [runSummary(record)] : [];
  }
  const records = await storage.listRuns({
    ...(query.statuses?.length && { statuses: query.statuses }),
    ...(query.pipeline !== undefined && { sagas: [query.pipeline] }),
    ...(query.text && { text: query.text }),
  });
  return records
    .filter((r) => matches(r, query))
    .reverse()
    .map(runSummary);
}

export async function pageRuns(storage: Storage, query: ListQuery & { limit: number }): Promise<RunPage> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const inStorage = [query.key, query.name, query.concurrency, query.trigger].every((f) => f === undefined);
  if (inStorage) {
    // What storage can filter (the text through its index): one page of the newest, not every run
    // read to keep a few.
    const records = await storage.listRuns({
      ...(query.statuses?.length && { statuses: query.statuses }),
      ...(query.pipeline !== undefined && { sagas: [query.pipeline] }),
      ...(query.text && { text: query.text }),
      newestFirst: true,
      ...(after && { before: after }),
      limit: query.limit + 1,
    });
    const runs = records.slice(0, query.limit).map(runSummary);
    const last = runs.at(-1);
    return { runs, ...(records.length > query.limit && last && { next: encodeCursor(last) }) };
  }
  const all = await listRuns(storage, query);
  const start = after === undefined ? 0 : all.findIndex((r) => newerFirst(r, after) > 0);
  const runs = start === -1 ? [] : all.slice(start, start + query.limit);
  const last = runs.at(-1);
  const more = start !== -1 && start + query.limit < all.length;
  return { runs, ...(more && last && { next: encodeCursor(last) }) };
}

function matches(record: RunRecord, query: Omit<ListQuery, "limit" | "cursor">): boolean {
  if (query.statuses?.length && !query.statuses.includes(record.status)) return false;
  if (query.pipeline !== undefined && record.saga !== query.pipeline) return false;
  if (query.name !== undefined && record.runName !== query.name) return false;
  if (query.concurrency !== undefined && concurrencyKeyOf(record) !== query.concurrency) return false;
  if (query.trigger !== undefined && (triggerOf(record) ?? "manual") !== query.trigger) return false;
  if (query.text) {
    const text = query.text.toLowerCase();
    const fields = [record.id, record.runName ?? "", record.saga];
    if (!fields.some((field) => field.toLowerCase().includes(text))) return false;
  }
  return true;
}

/** Newest first: later `createdAt`, then larger id. Positive when `run` comes after `cursor`. */
function newerFirst(
  run: Pick<RunSummary, "createdAt" | "id">,
  cursor: { createdAt: number; id: string },
): number {
  if (run.createdAt !== cursor.createdAt) return cursor.createdAt - run.createdAt;
  return run.id < cursor.id ? 1 : run.id > cursor.id ? -1 : 0;
}

function encodeCursor(run: Pick<RunSummary, "createdAt" | "id">): string {
  return Buffer.from(JSON.stringify([run.createdAt, run.id])).toString("base64url");
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown[];
    if (typeof createdAt === "number" && typeof id === "string") return { createdAt, id };
  } catch {
    // Reported below.
  }
  throw new SlipwayError("invalid_input", `"${cursor}" is not a cursor from a previous page of runs`);
}
