/**
 * One run: what it is (status, trigger, inputs, parent and children), its job graph and jobs with
 * live statuses, the actions its viewer's role allows, where its time went (the waterfall), and its log. Kept current
 * by the run's event stream: any event loads the run again.
 */
import { useEffect, useState } from "preact/hooks";
import { Actions } from "./actions.js";
import {
  ACTIVE,
  allows,
  api,
  type Caller,
  ENDED,
  type RunDetail,
  runEvents,
  runPath,
  type StepSummary,
} from "./api.js";
import { type GraphNode, JobGraph } from "./graph.js";
import { useLoad } from "./live.js";
import { LogView } from "./log-view.js";
import { Link } from "./router.js";
import { formatDuration, formatTime, Status } from "./status.js";
import { Waterfall } from "./waterfall.js";

export function RunPage(props: { id: string; caller: Caller }) {
  const run = useLoad(() => api<RunDetail>(runPath(props.id)), [props.id]);
  const [job, setJob] = useState<string | undefined>(undefined);
  const [stream, setStream] = useState(0);
  const detail = run.data;
  const active = detail !== undefined && ACTIVE.includes(detail.status);

  // Follow the run's events while it goes; each one (debounced) reloads the run.
  useEffect(() => {
    if (detail !== undefined && !active) return;
    const aborted = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const soon = () => {
      clearTimeout(timer);
      timer = setTimeout(run.reload, 150);
    };
    runEvents(props.id, soon, aborted.signal).then(
      () => {
        // The server ends the stream when the run ends or stops for someone: read it once more.
        run.reload();
        if (!aborted.signal.aborted) setTimeout(() => setStream((n) => n + 1), 1000);
      },
      () => {
        if (!aborted.signal.aborted) setTimeout(() => setStream((n) => n + 1), 2000);
      },
    );
    return () => {
      aborted.abort();
      clearTimeout(timer);
    };
  }, [props.id, active, stream]);

  if (run.error && !detail)
    return (
      <main>
        <p class="error" role="alert">
          {run.error.message}
        </p>
      </main>
    );
  // The log is read from the start, beside the run (not after it): keyed, it stays the same view
  // once the run is drawn around it.
  const log = <LogView key="log" run={props.id} job={job} />;
  if (!detail)
    return (
      <main aria-busy="true">
        <p>Loading…</p>
        {log}
      </main>
    );
  const { nodes, edges } = graphOf(detail);
  const iterations = detail.steps.filter((s) => s.iteration !== undefined || s.item !== undefined);
  return (
    <main class="run" data-run={detail.id} data-status={detail.status}>
      <header class="run-head">
        <h1>
          {detail.name ?? detail.id} <Status status={detail.status} />
        </h1>
        {allows(props.caller.role, "operate") && <Actions run={detail} onDone={run.reload} />}
      </header>
      <Facts run={detail} />
      <section aria-label="Jobs">
        <h2>Jobs</h2>
        <div class="graph-box">
          <JobGraph
            nodes={nodes}
            edges={edges}
            selected={job}
            onSelect={(j) => setJob(job === j ? undefined : j)}
          />
        </div>
        <JobTable run={detail} nodes={nodes} selected={job} onSelect={setJob} />
      </section>
      {iterations.length > 0 && <Iterations steps={iterations} />}
      <Waterfall key={detail.id} run={detail} onSelect={setJob} />
      {log}
    </main>
  );
}

/** The plan's jobs with their live status; a job the plan has but storage has not started is pending. */
function graphOf(run: RunDetail): { nodes: GraphNode[]; edges: [string, string][] } {
  const steps = new Map(run.steps.map((s) => [s.job, s]));
  const waiting = new Map(run.waiting.map((w) => [w.job, w]));
  const ended = ENDED.includes(run.status);
  const plan =
    run.plan?.steps ??
    run.steps.filter((s) => s.group === undefined).map((s) => ({ action: s.job, label: s.job, needs: [] }));
  const nodes = plan.map((p): GraphNode => {
    const step = steps.get(p.action);
    const wait = waiting.get(p.action);
    const status = step?.queued ? "queued" : (step?.status ?? (ended ? "skipped" : "pending"));
    const took = step?.startedAt && step.endedAt ? formatDuration(step.endedAt - step.startedAt) : undefined;
    return { id: p.action, label: p.label, status, note: wait?.message ?? step?.queued ?? took };
  });
  const edges = plan.flatMap((p) => p.needs.map((n): [string, string] => [n, p.action]));
  return { nodes, edges };
}

function Facts(props: { run: RunDetail }) {
  const { run } = props;
  const event = run.spec?.event;
  const inputs = Object.entries(run.spec?.inputs ?? {});
  return (
    <dl class="facts">
      <dt>Pipeline</dt>
      <dd>
        <Link href={`/?pipeline=${encodeURIComponent(run.pipeline)}`}>{run.pipeline}</Link>
      </dd>
      <dt>Run id</dt>
      <dd>
        <code>{run.id}</code>
      </dd>
      <dt>Started</dt>
      <dd>
        {formatTime(run.createdAt)}
        {run.endedAt &&
          `, ended ${formatTime(run.endedAt)} after ${formatDuration(run.endedAt - run.createdAt)}`}
      </dd>
      <dt>Started by</dt>
      <dd data-started-by={run.spec?.startedBy ?? ""}>
        {run.spec?.startedBy ?? (event ? `the ${String(event.kind)} trigger` : "a terminal (slipway run)")}
      </dd>
      <dt>Trigger</dt>
      <dd data-trigger={event ? String(event.kind) : "manual"}>
        {event ? (
          <span>
            {String(event.kind)}{" "}
            {Object.entries(event)
              .filter(([k, v]) => k !== "kind" && (typeof v === "string" || typeof v === "number"))
              .slice(0, 6)
              .map(([k, v]) => `${k}=${v}`)
              .join(" ")}
          </span>
        ) : (
          "manual (submitted with the CLI or the API)"
        )}
      </dd>
      {run.spec && (
        <>
          <dt>File</dt>
          <dd>
            <code>{run.spec.file}</code>
            {run.spec.tiers.length > 0 && ` tiers: ${run.spec.tiers.join(", ")}`}
          </dd>
        </>
      )}
      <dt>Inputs</dt>
      <dd>
        {inputs.length === 0
          ? "none"
          : inputs.map(([k, v]) => (
              <code class="input" key={k}>
                {k}={String(v)}
              </code>
            ))}
      </dd>
      {run.cause && (
        <>
          <dt>Why it ended</dt>
          <dd class="why">
            {run.cause.kind === "cancel"
              ? `cancelled: ${run.cause.reason}`
              : run.cause.kind === "failure"
                ? `${run.cause.action} failed: ${run.cause.error.message}`
                : `its parent ${run.cause.runId}`}
          </dd>
        </>
      )}
      {run.parent && (
        <>
          <dt>Parent</dt>
          <dd>
            <Link href={runPath(run.parent.runId)}>{run.parent.runId}</Link> (step {run.parent.step})
          </dd>
        </>
      )}
      {run.children && run.children.length > 0 && (
        <>
          <dt>Children</dt>
          <dd>
            <ul class="children">
              {run.children.map((child) => (
                <li key={child.id}>
                  <Link href={runPath(child.id)}>{child.id}</Link> {child.pipeline} from {child.step}{" "}
                  <Status status={child.status} />
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
    </dl>
  );
}

function JobTable(props: {
  run: RunDetail;
  nodes: GraphNode[];
  selected: string | undefined;
  onSelect: (job: string | undefined) => void;
}) {
  const steps = new Map(props.run.steps.map((s) => [s.job, s]));
  const wait = new Map(props.run.waiting.map((w) => [w.job, w.message]));
  return (
    <table class="jobs">
      <thead>
        <tr>
          <th scope="col">Job</th>
          <th scope="col">Status</th>
          <th scope="col">Attempt</th>
          <th scope="col">Took</th>
          <th scope="col">Note</th>
        </tr>
      </thead>
      <tbody>
        {props.nodes.map((node) => {
          const step = steps.get(node.id);
          return (
            <tr key={node.id} class={props.selected === node.id ? "selected" : undefined}>
              <td>
                <button
                  type="button"
                  class="link"
                  aria-pressed={props.selected === node.id}
                  title="Show this job's log"
                  onClick={() => props.onSelect(props.selected === node.id ? undefined : node.id)}
                >
                  {node.label}
                </button>
              </td>
              <td>
                <Status status={node.status} />
              </td>
              <td>{step?.attempt ?? "–"}</td>
              <td>{step?.startedAt ? formatDuration((step.endedAt ?? Date.now()) - step.startedAt) : "–"}</td>
              <td class="why">{step?.error ?? step?.undoError ?? wait.get(node.id) ?? step?.queued ?? ""}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** The steps of loops and fan-outs, by group and iteration (`attempts#2.fix`). */
function Iterations(props: { steps: StepSummary[] }) {
  return (
    <section aria-label="Iterations">
      <h2>Loop iterations and fan-out items</h2>
      <table class="jobs">
        <thead>
          <tr>
            <th scope="col">Group</th>
            <th scope="col">#</th>
            <th scope="col">Step</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {props.steps.map((s) => (
            <tr key={s.job}>
              <td>{s.group}</td>
              <td>{s.iteration ?? s.item}</td>
              <td>
                <code>{s.job}</code>
              </td>
              <td>
                <Status status={s.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
