/**
 * Where a run's time went, drawn: one row per step, one bar per phase (queued, waiting by reason,
 * running, probing, undoing, cleanup) on a time axis from the run's start to its end (or now), with
 * the critical path marked and listed. Every bar is focusable and says what it was in words.
 */
import { useEffect, useState } from "preact/hooks";
import { type RunDetail, runPath, type StepSummary } from "./api.js";
import { Link } from "./router.js";
import { formatDuration, formatTime } from "./status.js";

type Timings = NonNullable<RunDetail["timings"]>;
type Phase = Timings[number]["phases"][number];
type Reason = NonNullable<Phase["reason"]>;
type Path = NonNullable<RunDetail["criticalPath"]>;

/** The bar the line under the waterfall tells of (read from the latest data at each render). */
interface Pointed {
  /** The row's key (`Line.key`). */
  row: string;
  index: number;
}

/**
 * One row of the waterfall: a step, or one attempt of a step that had several (attempts apart, each
 * with its own bars), labelled as people read it: `build (linux)`, `fix (iteration 2)`, `attempt 2`.
 */
interface Line {
  key: string;
  job: string;
  label: string;
  phases: Phase[];
  nested: boolean;
  /** Set when the step's attempts are shown apart. */
  attempt?: number;
  iteration?: number;
  item?: number;
  /** The first row of a loop iteration (a rule above it). */
  firstOfIteration?: boolean;
  readyAt?: number;
}

const WORDS: Record<Phase["phase"], string> = {
  queued: "queued",
  waiting: "waited",
  running: "ran",
  probing: "probed",
  undoing: "undo",
  cleanup: "cleanup",
};

/** Why a phase waited, as `slipway show` says it: `lock swarm (held by run r-12 job deploy; 1st in line)`. */
export function reasonText(reason: Reason): string {
  const holder = reason.holder
    ? `held by run ${reason.holder.runName ? `${reason.holder.runName} (${reason.holder.run})` : reason.holder.run} job ${reason.holder.job}`
    : undefined;
  const line = reason.position === undefined ? undefined : `${ordinal(reason.position)} in line`;
  const details = [reason.reserved ? "reserved ahead of it" : undefined, holder, line].filter(Boolean);
  const more = details.length > 0 ? ` (${details.join("; ")})` : "";
  switch (reason.kind) {
    case "lock":
      return `lock ${reason.resource ?? ""}${more}`;
    case "pool":
      return `${reason.resource ?? "a pool"}${more}`;
    case "concurrency":
      return `concurrency key ${reason.resource ?? ""}`;
    case "retry":
      return "a retry";
    case "signal":
      return `signal ${reason.resource ?? ""}`;
    case "child":
      return `child run ${reason.resource ?? ""}`;
    case "loop":
      return "its iterations";
    case "fan-out":
      return "its items";
    default:
      return `${reason.kind}${more}`;
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th");
  return `${n}${suffix}`;
}

/** A bar's words: `deploy, attempt 1: waited 10.5 s for lock swarm (held by run r-12 job deploy), 16:00:01 to 16:00:12`. */
function phaseText(job: string, phase: Phase, now: number): string {
  const open = phase.endedAt === null;
  const ms = (phase.endedAt ?? now) - phase.startedAt;
  const verb = open ? (phase.phase === "waiting" ? "waiting" : `${phase.phase}`) : WORDS[phase.phase];
  const reason = phase.reason ? ` for ${reasonText(phase.reason)}` : "";
  const when = `${formatTime(phase.startedAt)} to ${open ? "now" : formatTime(phase.endedAt)}`;
  return `${job}, attempt ${phase.attempt}: ${verb} ${formatDuration(ms)}${open ? " so far" : ""}${reason}${phase.failed ? " (failed)" : ""}, ${when}`;
}

/** The wait reasons the legend explains, in its order (the rest share one colour). */
const KINDS = ["lock", "pool", "admission", "concurrency", "retry", "signal", "child"] as const;

/** `onSelect(job)`: a bar clicked shows its job's log. */
export function Waterfall(props: { run: RunDetail; onSelect: (job: string) => void }) {
  const { run } = props;
  const live = run.endedAt === null;
  const [now, setNow] = useState(Date.now());
  const [told, setTold] = useState<Pointed | undefined>(undefined);
  // While the run goes the axis grows to now, even when no event comes (a job waiting for a lock).
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live]);

  const rows = linesOf(
    run,
    inPlanOrder(
      run,
      (run.timings ?? []).filter((row) => row.phases.length > 0),
    ),
  );
  const path = run.criticalPath;
  if (rows.length === 0) return path ? <PathList path={path} /> : null;
  const start = run.createdAt;
  const lastEnd = Math.max(
    ...rows.flatMap((row) => row.phases.map((p) => p.endedAt ?? (live ? now : p.startedAt))),
  );
  const end = Math.max(run.endedAt ?? Math.max(now, lastEnd), lastEnd, start + 1);
  const span = end - start;
  const at = (ms: number) => `${(Math.min(Math.max(ms - start, 0), span) / span) * 100}%`;
  const width = (from: number, to: number) => `max(2px, ${(Math.max(to - from, 0) / span) * 100}%)`;
  const segments = path?.segments ?? [];
  const onPath = (job: string, p: Phase) =>
    segments.some(
      (s) =>
        s.job === job &&
        s.phase === p.phase &&
        s.attempt === p.attempt &&
        s.startedAt < (p.endedAt ?? now) &&
        (s.endedAt ?? now) > p.startedAt,
    );
  const kinds = new Set(rows.flatMap((row) => row.phases.map((p) => p.reason?.kind)));
  const phases = new Set(rows.flatMap((row) => row.phases.map((p) => p.phase)));

  const bar = (line: Line, p: Phase, i: number, crit: boolean, prev: Phase | undefined) => {
    const job = line.job;
    const text = phaseText(job, p, now);
    const kind = p.reason
      ? (KINDS as readonly string[]).includes(p.reason.kind)
        ? p.reason.kind
        : "other"
      : undefined;
    const classes = [
      "ph",
      `ph-${p.phase}`,
      kind ? `why-${kind}` : "",
      p.failed ? "failed" : "",
      crit ? "crit" : "",
      p.endedAt === null ? "open" : "",
      prev && prev.attempt !== p.attempt ? "new-attempt" : "",
    ];
    const tell = () => setTold({ row: line.key, index: i });
    return (
      <button
        type="button"
        key={i}
        class={classes.filter(Boolean).join(" ")}
        style={{ left: at(p.startedAt), width: width(p.startedAt, p.endedAt ?? now) }}
        aria-label={`${text}${crit ? "; on the critical path" : ""}`}
        title={text}
        data-phase={p.phase}
        data-attempt={p.attempt}
        data-reason={p.reason?.kind}
        data-resource={p.reason?.resource}
        data-crit={crit ? "" : undefined}
        onMouseEnter={tell}
        onFocus={tell}
        onClick={() => props.onSelect(job)}
      >
        {p.failed && <span aria-hidden="true">✗</span>}
      </button>
    );
  };

  return (
    <section class="timings waterfall" aria-label="Timings">
      <h2>
        Where the time went{path ? `: critical path ${formatDuration(path.totalMs)}` : ""}
        {live && <span class="muted"> (so far)</span>}
      </h2>
      <Legend phases={phases} kinds={kinds} />
      <div class="wf">
        <div class="wf-row wf-axis" aria-hidden="true">
          <span class="wf-label" />
          <span class="wf-track">
            {[0, 0.25, 0.5, 0.75, 1].map((f) => (
              <span key={f} class="tick" style={{ left: `${f * 100}%` }}>
                {formatDuration(f * span)}
              </span>
            ))}
          </span>
        </div>
        {rows.map((row) => {
          const classes = [
            "wf-row",
            row.nested ? "nested" : "",
            row.firstOfIteration ? "iteration-start" : "",
          ];
          return (
            <div
              class={classes.filter(Boolean).join(" ")}
              key={row.key}
              data-job={row.job}
              data-attempt={row.attempt}
              data-iteration={row.iteration}
              data-item={row.item}
            >
              <span class="wf-label" title={`${row.job}: ${row.label}`}>
                {row.label}
              </span>
              <span class="wf-track">
                {row.phases.map((p, i) => bar(row, p, i, onPath(row.job, p), row.phases[i - 1]))}
                {row.readyAt !== undefined && (
                  <span
                    class="ready"
                    style={{ left: at(row.readyAt) }}
                    title={`ready at ${formatTime(row.readyAt)}`}
                  />
                )}
              </span>
            </div>
          );
        })}
        {segments.length > 0 && (
          <div class="wf-row wf-crit" data-job="">
            <span class="wf-label">critical path</span>
            <span class="wf-track">
              {segments.map((s, i) => (
                <span
                  key={i}
                  class={`seg ph-${s.phase}${s.failed ? " failed" : ""}`}
                  style={{ left: at(s.startedAt), width: width(s.startedAt, s.endedAt ?? now) }}
                  title={phaseText(s.job ?? "between jobs", s, now)}
                  data-job={s.job ?? ""}
                />
              ))}
            </span>
          </div>
        )}
      </div>
      <Told rows={rows} told={told} now={now} />
      {path && <PathList path={path} />}
    </section>
  );
}

/**
 * Rows in the plan's order: a loop's iterations and a fan-out's items right after their group, a
 * readiness probe right after the job it probes; steps the plan does not name (the concurrency gate) first.
 */
function inPlanOrder(run: RunDetail, rows: Timings): Timings {
  const index = new Map((run.plan?.steps ?? []).map((p, i) => [p.action, i]));
  const groups = new Map(run.steps.map((s) => [s.job, s.group]));
  const key = (row: Timings[number], i: number): [number, number, number] => {
    const group = groups.get(row.job);
    const under = group ?? row.probes;
    if (under !== undefined && index.has(under)) return [index.get(under)!, 1, i];
    return [index.get(row.job) ?? -1, 0, i];
  };
  return rows
    .map((row, i) => ({ row, key: key(row, i) }))
    .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2])
    .map((r) => r.row);
}

/**
 * The rows drawn: a matrix leg or fan-out item under its label (`build (linux)`), a loop's step as
 * its job and iteration (`fix (iteration 2)`), and a step that ran more than once one row per attempt,
 * each attempt's wait for its retry, undo and cleanup on its attempt's row.
 */
function linesOf(run: RunDetail, rows: Timings): Line[] {
  const steps = new Map<string, StepSummary>(run.steps.map((s) => [s.job, s]));
  const lines: Line[] = [];
  let lastIteration: string | undefined;
  for (const row of rows) {
    const step = steps.get(row.job);
    const iteration = step?.iteration;
    const item = step?.item;
    const inner = step?.group !== undefined ? row.job.slice(row.job.indexOf(".") + 1) : row.job;
    let label = row.label !== row.job ? row.label : inner;
    if (row.probes) label = `${row.label} (probes ${row.probes})`;
    else if (iteration !== undefined) label = `${inner} (iteration ${iteration})`;
    else if (item !== undefined && row.label === row.job) label = `${inner} (item ${item})`;
    const iterationKey = iteration === undefined ? undefined : `${step?.group}#${iteration}`;
    const base = {
      job: row.job,
      nested: step?.group !== undefined || row.probes !== undefined,
      ...(iteration !== undefined && { iteration }),
      ...(item !== undefined && { item }),
      ...(iterationKey !== undefined && iterationKey !== lastIteration && { firstOfIteration: true }),
    };
    lastIteration = iterationKey;
    // Undo attempts count apart from the job's: an undo is drawn on the row of the job's last attempt.
    const attempts = [...new Set(row.phases.filter((p) => p.phase !== "undoing").map((p) => p.attempt))].sort(
      (a, b) => a - b,
    );
    const last = attempts.at(-1);
    if (attempts.length <= 1) {
      lines.push({
        ...base,
        key: row.job,
        label,
        phases: row.phases,
        ...(row.readyAt !== undefined && { readyAt: row.readyAt }),
      });
      continue;
    }
    for (const attempt of attempts) {
      const first = attempt === attempts[0];
      lines.push({
        ...base,
        key: `${row.job}@${attempt}`,
        label: first ? `${label}, attempt ${attempt}` : `attempt ${attempt}`,
        phases: row.phases.filter((p) => (p.phase === "undoing" ? attempt === last : p.attempt === attempt)),
        nested: base.nested || !first,
        attempt,
        ...(!first && { firstOfIteration: false }),
        ...(row.readyAt !== undefined && attempt === last && { readyAt: row.readyAt }),
      });
    }
  }
  return lines;
}

/** The line under the waterfall: what the bar pointed at or focused was, and who held what it waited for. */
function Told(props: { rows: Line[]; told: Pointed | undefined; now: number }) {
  const { told } = props;
  const row = told && props.rows.find((r) => r.key === told.row);
  const phase = told && row?.phases[told.index];
  const holder = phase?.reason?.holder;
  return (
    <p class="wf-told" data-told={told && row && phase ? `${row.job}/${told.index}` : ""}>
      {row && phase ? (
        <>
          {phaseText(row.job, phase, props.now)}
          {holder && (
            <>
              {" "}
              · holder: <Link href={runPath(holder.run)}>{holder.runName ?? holder.run}</Link> job{" "}
              {holder.job}
            </>
          )}
        </>
      ) : (
        "Point at a bar, or focus it with Tab, to read what it was; click it for its job's log."
      )}
    </p>
  );
}

function Legend(props: { phases: Set<string>; kinds: Set<string | undefined> }) {
  const items: [string, string][] = [
    ["ph ph-queued", "queued"],
    ...KINDS.filter((k) => props.kinds.has(k)).map((k): [string, string] => [
      `ph ph-waiting why-${k}`,
      `waiting: ${k}`,
    ]),
    ...([...props.kinds].some((k) => k !== undefined && !(KINDS as readonly string[]).includes(k))
      ? [["ph ph-waiting why-other", "waiting: other"] as [string, string]]
      : []),
    ["ph ph-running", "running"],
    ...(["probing", "undoing", "cleanup"] as const)
      .filter((p) => props.phases.has(p))
      .map((p): [string, string] => [`ph ph-${p}`, p]),
    ["ph ph-running failed", "✗ failed"],
    ["ph ph-running crit", "on the critical path"],
  ];
  return (
    <ul class="wf-legend" aria-label="Legend">
      {items.map(([cls, word]) => (
        <li key={word}>
          <span class={`swatch ${cls}`} aria-hidden="true" /> {word}
        </li>
      ))}
    </ul>
  );
}

/** The critical path in words: each link, its time, what of it was held back. */
function PathList(props: { path: Path }) {
  return (
    <div class="crit-list">
      <span>Critical path:</span>
      <ol aria-label="The critical path, link by link">
        {props.path.steps.map((s, i) => (
          <li key={`${s.job}-${i}`} data-job={s.job}>
            <code>{s.job}</code>
            {s.phase ? ` ${s.phase}` : ""} {formatDuration(s.ms)}
            {s.queuedMs ? ` (${formatDuration(s.queuedMs)} held back)` : ""}
            {s.failed ? " ✗ failed" : ""}
          </li>
        ))}
      </ol>
    </div>
  );
}
