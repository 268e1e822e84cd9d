/** The runs: newest first, filtered on the server, a page at a time, the first page kept current. */
import { useState } from "preact/hooks";
import { api, type RunStatus, type RunSummary, runPath } from "./api.js";
import { useLoad } from "./live.js";
import { Link, navigate } from "./router.js";
import { formatDuration, formatTime, Status, statusText } from "./status.js";

const PAGE = 50;
/** What starts runs: the event kinds of docs/triggers.md, and by hand. */
const TRIGGERS = ["manual", "push", "pull_request", "comment", "schedule"];
const STATUSES: readonly RunStatus[] = [
  "running",
  "waiting",
  "completed",
  "compensating",
  "compensated",
  "needs_attention",
  "failed",
  "cancelled",
];

/** The filters live in the address (`/?status=failed&q=gitea`): a filtered list can be shared. */
export function RunsList(props: { query: URLSearchParams }) {
  const pipeline = props.query.get("pipeline") ?? "";
  const status = props.query.get("status") ?? "";
  const text = props.query.get("q") ?? "";
  const concurrency = props.query.get("concurrency") ?? "";
  const trigger = props.query.get("trigger") ?? "";
  // The pages after the first: cursors of the pages shown, from the server's `next`.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const filters = new URLSearchParams({ limit: String(PAGE) });
  if (pipeline) filters.set("pipeline", pipeline);
  if (status) filters.set("status", status);
  if (text) filters.set("q", text);
  if (concurrency) filters.set("concurrency", concurrency);
  if (trigger) filters.set("trigger", trigger);
  if (cursor) filters.set("cursor", cursor);
  // The first page is read again when the server tells of a run created or changing status (polled
  // only while that stream is down) so new runs appear; a later page stays as it was read.
  const page = useLoad(
    () => api<{ runs: RunSummary[]; next?: string }>(`/runs?${filters}`),
    [filters.toString()],
    cursor ? undefined : 2000,
    cursor ? undefined : (change) => change.kind === "run" && (!pipeline || change.pipeline === pipeline),
  );
  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(props.query);
    if (value) next.set(name, value);
    else next.delete(name);
    setCursors([]);
    const search = next.toString();
    navigate(search ? `/?${search}` : "/", true);
  };
  return (
    <main>
      <h1>Runs</h1>
      <form class="filters" onSubmit={(event) => event.preventDefault()} aria-label="Filters">
        <label>
          Search{" "}
          <input
            type="search"
            name="q"
            placeholder="id, run name or pipeline"
            value={text}
            onChange={(event) => setFilter("q", event.currentTarget.value.trim())}
          />
        </label>
        <label>
          Pipeline{" "}
          <input
            name="pipeline"
            value={pipeline}
            onChange={(event) => setFilter("pipeline", event.currentTarget.value.trim())}
          />
        </label>
        <label>
          Concurrency key{" "}
          <input
            name="concurrency"
            value={concurrency}
            onChange={(event) => setFilter("concurrency", event.currentTarget.value.trim())}
          />
        </label>
        <label>
          Trigger{" "}
          <select
            name="trigger"
            value={trigger}
            onChange={(event) => setFilter("trigger", event.currentTarget.value)}
          >
            <option value="">any</option>
            {TRIGGERS.map((t) => (
              <option value={t} key={t}>
                {t.replace(/_/g, " ")}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status{" "}
          <select
            name="status"
            value={status}
            onChange={(event) => setFilter("status", event.currentTarget.value)}
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={s} key={s}>
                {statusText(s)}
              </option>
            ))}
          </select>
        </label>
      </form>
      {page.error && (
        <p class="error" role="alert">
          {page.error.message}
        </p>
      )}
      {page.data && page.data.runs.length === 0 && (
        <p class="empty">No runs{cursor ? " on this page" : ""}.</p>
      )}
      {page.data && page.data.runs.length > 0 && (
        <table class="runs">
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Run</th>
              <th scope="col">Pipeline</th>
              <th scope="col">Trigger</th>
              <th scope="col">Started</th>
              <th scope="col">Took</th>
              <th scope="col">Why it ended</th>
            </tr>
          </thead>
          <tbody>
            {page.data.runs.map((run) => (
              <tr key={run.id} data-run={run.id}>
                <td>
                  <Status status={run.status} />
                </td>
                <td>
                  <Link href={runPath(run.id)}>{run.name ?? run.id}</Link>
                  {run.name && <div class="sub">{run.id}</div>}
                </td>
                <td>
                  {run.pipeline}
                  {run.concurrencyKey && run.concurrencyKey !== run.pipeline && (
                    <div class="sub" title="concurrency key">
                      {run.concurrencyKey}
                    </div>
                  )}
                </td>
                <td>{run.trigger ?? "–"}</td>
                <td>{formatTime(run.createdAt)}</td>
                <td>{run.endedAt ? formatDuration(run.endedAt - run.createdAt) : "–"}</td>
                <td class="why">{cause(run)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="pages" aria-label="Pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>
          Newest
        </button>
        <button
          type="button"
          disabled={cursors.length === 0}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!page.data?.next}
          onClick={() => page.data?.next && setCursors([...cursors, page.data.next])}
        >
          Older
        </button>
      </nav>
    </main>
  );
}

function cause(run: RunSummary): string {
  const c = run.cause;
  if (!c) return run.error?.message ?? "";
  if (c.kind === "cancel") return `cancelled: ${c.reason}`;
  if (c.kind === "failure") return `${c.action} failed: ${c.error.message}`;
  return `its parent ${c.runId} (${c.step})`;
}
