/**
 * The Workers view: the processes running runs from this database (a cluster's servers, foreground
 * runs), alive or not by their heartbeats, what each holds now and its room for more.
 */
import { api, runPath, type WorkerInfo, type WorkersResponse } from "./api.js";
import { useLoad } from "./live.js";
import { Link } from "./router.js";
import { formatDuration, formatTime, Status } from "./status.js";
import "./views.css";

export function WorkersView() {
  const workers = useLoad(() => api<WorkersResponse>("/workers"), [], 2000);
  return (
    <main class="workers-view">
      <h1 id="workers">Workers</h1>
      {workers.error && (
        <p class="error" role="alert">
          {workers.error.message}
        </p>
      )}
      <p class="hint">
        Processes running runs from this server's database (this server, the other workers of its cluster, any{" "}
        <code>slipway run</code> beside them). One silent for{" "}
        {formatDuration(workers.data?.leaseMs ?? 10_000)} is taken for dead and its runs are continued by
        another.
      </p>
      {workers.data && <Workers workers={workers.data.workers} />}
    </main>
  );
}

function Workers(props: { workers: WorkerInfo[] }) {
  if (props.workers.length === 0) return <p class="empty">No worker is registered.</p>;
  return (
    <table class="workers" aria-labelledby="workers">
      <thead>
        <tr>
          <th scope="col">Worker</th>
          <th scope="col">State</th>
          <th scope="col">Host and pid</th>
          <th scope="col">Started</th>
          <th scope="col">Last heartbeat</th>
          <th scope="col">Holds</th>
          <th scope="col">Free</th>
        </tr>
      </thead>
      <tbody>
        {props.workers.map((e) => (
          <tr key={e.id} data-worker={e.id} data-self={e.self ? "true" : undefined}>
            <th scope="row">
              <code>{e.id}</code>
              {e.self && <div class="sub">this server</div>}
            </th>
            <td>
              <Status status={e.alive ? "alive" : "offline"} />
            </td>
            <td>
              {e.host} <span class="sub">pid {e.pid}</span>
            </td>
            <td>{formatTime(e.startedAt)}</td>
            <td class="heartbeat" data-age-ms={Math.round(e.heartbeatAgeMs)}>
              {formatTime(e.heartbeatAt)} <span class="sub">({formatDuration(e.heartbeatAgeMs)} ago)</span>
            </td>
            <td>
              {e.runs.length === 0 ? (
                <span class="hint">no run</span>
              ) : (
                <ul>
                  {e.runs.map((r) => (
                    <li key={r.id} data-run={r.id}>
                      <Link href={runPath(r.id)}>{r.name ?? r.id}</Link> <span class="sub">{r.pipeline}</span>{" "}
                      <Status status={r.status} />
                      {r.jobs.length > 0 && `: ${r.jobs.join(", ")}`}
                    </li>
                  ))}
                </ul>
              )}
            </td>
            <td class="free" data-free={e.free ?? "unlimited"}>
              {e.free === null ? (
                <span class="hint">unlimited</span>
              ) : (
                <>
                  {e.free} <span class="sub">of {e.maxRuns}</span>
                </>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
