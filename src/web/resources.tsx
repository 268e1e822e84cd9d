/** The Resources view: pools and locks with their holders, what runs now, and per job declared against measured memory. */
import { api, type JobUsage, type PoolHolder, type ResourcesResponse, runPath } from "./api.js";
import { useLoad } from "./live.js";
import { Link } from "./router.js";
import { formatBytes, formatTime, Status } from "./status.js";
import "./views.css";

export function ResourcesView() {
  const resources = useLoad(() => api<ResourcesResponse>("/resources"), [], 2000);
  const data = resources.data;
  return (
    <main class="resources">
      <h1>Resources</h1>
      {resources.error && (
        <p class="error" role="alert">
          {resources.error.message}
        </p>
      )}
      {data && (
        <>
          <h2 id="pools">Pools and locks</h2>
          {data.pools.length === 0 ? (
            <p class="empty">This server admits jobs without pools or locks.</p>
          ) : (
            <Pools pools={data.pools} />
          )}
          <h2 id="running">Running now</h2>
          {data.running.length === 0 ? (
            <p class="empty">No job runs now.</p>
          ) : (
            <table class="running" aria-labelledby="running">
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Job</th>
                  <th scope="col">Since</th>
                  <th scope="col">Declared</th>
                </tr>
              </thead>
              <tbody>
                {data.running.map((job) => (
                  <tr key={`${job.run}/${job.job}`} data-run={job.run} data-job={job.job}>
                    <td>
                      <Link href={runPath(job.run)}>{job.run}</Link>
                    </td>
                    <td>{job.label}</td>
                    <td>{formatTime(job.since)}</td>
                    <td>{declaredText(job.declared)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2 id="jobs">Declared and measured, per job</h2>
          <p class="hint">
            Memory a job declares (<code>resources.memory</code>, or <code>auto</code>: what admission asks
            for from the p95 of its recent peaks) beside the peak resident memory of its process tree,
            measured in its recent runs.
          </p>
          {(data.jobs ?? []).length === 0 ? (
            <p class="empty">No pipeline has run here yet.</p>
          ) : (
            <JobsTable jobs={data.jobs ?? []} />
          )}
        </>
      )}
    </main>
  );
}

function Pools(props: { pools: ResourcesResponse["pools"] }) {
  return (
    <table class="pools" aria-labelledby="pools">
      <thead>
        <tr>
          <th scope="col">Pool or lock</th>
          <th scope="col">In use</th>
          <th scope="col">Free</th>
          <th scope="col">Capacity</th>
          <th scope="col">Held by</th>
        </tr>
      </thead>
      <tbody>
        {props.pools.map((pool) => {
          const lock = pool.name.startsWith("lock:");
          const used = pool.capacity - pool.free;
          return (
            <tr key={pool.name} data-pool={pool.name}>
              <th scope="row">{lock ? `lock ${pool.name.slice(5)}` : pool.name}</th>
              <td>
                <meter
                  min={0}
                  max={pool.capacity || 1}
                  value={used}
                  aria-label={`${pool.name}: ${amount(pool.name, used)} of ${amount(pool.name, pool.capacity)} in use`}
                />{" "}
                {pool.capacity > 0 ? `${Math.round((100 * used) / pool.capacity)} %` : "–"}
              </td>
              <td>{amount(pool.name, pool.free)}</td>
              <td>{amount(pool.name, pool.capacity)}</td>
              <td class="holders">
                {pool.held ? (
                  pool.held.length === 0 ? (
                    "–"
                  ) : (
                    <ul>
                      {pool.held.map((holder) => (
                        <Holder key={`${holder.run}/${holder.job}`} pool={pool.name} holder={holder} />
                      ))}
                    </ul>
                  )
                ) : (
                  pool.holders.join("; ") || "–"
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Holder(props: { pool: string; holder: PoolHolder }) {
  const { holder } = props;
  return (
    <li data-holder-run={holder.run} data-holder-job={holder.job}>
      run <Link href={runPath(holder.run)}>{holder.runName ?? holder.run}</Link> job{" "}
      <strong>{holder.job}</strong> <span class="sub">({holder.pipeline})</span>, since{" "}
      {formatTime(holder.since)}
      {!props.pool.startsWith("lock:") && `: ${amount(props.pool, holder.amount)}`}
    </li>
  );
}

function JobsTable(props: { jobs: JobUsage[] }) {
  return (
    <table class="usage" aria-labelledby="jobs">
      <thead>
        <tr>
          <th scope="col">Pipeline</th>
          <th scope="col">Job</th>
          <th scope="col">Declared memory</th>
          <th scope="col">Asks for</th>
          <th scope="col">Peak p95</th>
          <th scope="col">Peak max</th>
          <th scope="col">Last peak</th>
          <th scope="col">Samples</th>
          <th scope="col">Measured against declared</th>
          <th scope="col">Also declares</th>
        </tr>
      </thead>
      <tbody>
        {props.jobs.map((job) => {
          const memory = job.declared?.memory;
          return (
            <tr key={`${job.pipeline}/${job.job}`} data-pipeline={job.pipeline} data-job={job.job}>
              <td>{job.run ? <Link href={runPath(job.run)}>{job.pipeline}</Link> : job.pipeline}</td>
              <td>{job.job}</td>
              <td class="declared-memory">
                {memory === undefined ? "–" : memory === "auto" ? "auto" : formatBytes(memory)}
              </td>
              <td>{formatBytes(job.requestMemory)}</td>
              <td class="peak-p95">{formatBytes(job.measured?.p95)}</td>
              <td class="peak-max">{formatBytes(job.measured?.max)}</td>
              <td>{formatBytes(job.measured?.last)}</td>
              <td class="samples">{job.measured?.samples ?? 0}</td>
              <td>
                <Fit job={job} />
              </td>
              <td>{otherDeclared(job.declared)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** Whether the measured p95 fits what admission asks for: an icon and words, never a colour alone. */
function Fit(props: { job: JobUsage }) {
  const { measured, requestMemory } = props.job;
  if (!measured) return <Status status="unmeasured" />;
  if (requestMemory === null) return <span class="hint">nothing declared</span>;
  const ratio = measured.p95 / requestMemory;
  return (
    <span title={`p95 is ${Math.round(ratio * 100)} % of what it asks for`}>
      <Status status={ratio > 1 ? "over" : "within"} /> {Math.round(ratio * 100)} %
    </span>
  );
}

function otherDeclared(declared: JobUsage["declared"]): string {
  if (!declared) return "–";
  const parts: string[] = [];
  if (declared.cpu !== undefined) parts.push(`cpu ${declared.cpu}`);
  if (declared.disk !== undefined) parts.push(`disk ${formatBytes(declared.disk)}`);
  for (const lock of declared.locks) parts.push(`lock ${lock}`);
  return parts.join(", ") || "–";
}

/** A running job's `resources:` as the plan has it (`memoryBytes`, `cpu`, `diskBytes`, `locks`). */
function declaredText(declared: Record<string, unknown>): string {
  const parts: string[] = [];
  const memory = declared.memoryBytes;
  if (memory !== undefined) parts.push(`memory ${typeof memory === "number" ? formatBytes(memory) : memory}`);
  if (typeof declared.cpu === "number") parts.push(`cpu ${declared.cpu}`);
  if (typeof declared.diskBytes === "number") parts.push(`disk ${formatBytes(declared.diskBytes)}`);
  for (const lock of (declared.locks as string[] | undefined) ?? []) parts.push(`lock ${lock}`);
  return parts.join(", ") || "–";
}

/** Bytes for memory and disk, cores for cpu, slots for locks. */
function amount(pool: string, value: number): string {
  return pool === "memory" || pool === "disk" ? formatBytes(value) : String(value);
}
