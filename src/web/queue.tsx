/** Every job that is not running and why (the lock, who holds it, the place in line), and the pools. */
import { api, type QueueEntry, type ResourcesResponse, runPath } from "./api.js";
import { useLoad } from "./live.js";
import { Link } from "./router.js";
import { formatTime, Status } from "./status.js";

export function QueueView() {
  // Read again when the server tells of a job or run moving (polled only while that stream is down).
  const queue = useLoad(() => api<{ jobs: QueueEntry[] }>("/queue"), [], 2000, anyChange);
  const resources = useLoad(() => api<ResourcesResponse>("/resources"), [], 2000, anyChange);
  return (
    <main>
      <h1>Queue</h1>
      {queue.error && (
        <p class="error" role="alert">
          {queue.error.message}
        </p>
      )}
      {queue.data && queue.data.jobs.length === 0 && <p class="empty">Nothing waits.</p>}
      {queue.data && queue.data.jobs.length > 0 && (
        <table class="queue">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Job</th>
              <th scope="col">State</th>
              <th scope="col">Waits for</th>
              <th scope="col">Until</th>
              <th scope="col">Why</th>
            </tr>
          </thead>
          <tbody>
            {queue.data.jobs.map((entry) => (
              <tr key={`${entry.run}/${entry.job}`} data-run={entry.run} data-job={entry.job}>
                <td>
                  <Link href={runPath(entry.run)}>{entry.runName ?? entry.run}</Link>
                  <div class="sub">{entry.pipeline}</div>
                </td>
                <td>{entry.label}</td>
                <td>
                  <Status status={entry.reason === "admission" ? "queued" : entry.state} />
                </td>
                <td>{entry.reason}</td>
                <td>{entry.until ? formatTime(entry.until) : "–"}</td>
                <td class="why">{entry.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {resources.data && resources.data.pools.length > 0 && (
        <>
          <h2>Pools and locks</h2>
          <table class="pools">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Free</th>
                <th scope="col">Capacity</th>
                <th scope="col">Held by</th>
              </tr>
            </thead>
            <tbody>
              {resources.data.pools.map((pool) => (
                <tr key={pool.name}>
                  <td>{pool.name}</td>
                  <td>{amount(pool.name, pool.free)}</td>
                  <td>{amount(pool.name, pool.capacity)}</td>
                  <td>{pool.holders.join("; ") || "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </main>
  );
}

const anyChange = () => true;

/** Bytes for memory and disk, cores for cpu, slots for locks. */
function amount(pool: string, value: number): string {
  if (pool !== "memory" && pool !== "disk") return String(value);
  const gib = value / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(value / 1024 ** 2).toFixed(0)} MiB`;
}
