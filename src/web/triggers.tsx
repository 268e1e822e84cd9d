/**
 * The Triggers view: sources and their polls (and the worker polling each), recent events with each
 * pipeline's verdict, what awaits approval, schedules.
 */
import { api, runPath, type TriggersResponse } from "./api.js";
import { useLoad } from "./live.js";
import { Link } from "./router.js";
import { formatDuration, formatTime, Status } from "./status.js";
import "./views.css";

export function TriggersView() {
  const triggers = useLoad(() => api<TriggersResponse>("/triggers"), [], 2000);
  const t = triggers.data;
  const none = t && t.sources.length === 0 && t.schedules.length === 0 && t.events.length === 0;
  return (
    <main class="triggers">
      <h1>Triggers</h1>
      {triggers.error && (
        <p class="error" role="alert">
          {triggers.error.message}
        </p>
      )}
      <h2 id="sources">Sources</h2>
      {none && (
        <p class="empty" data-empty="triggers">
          No triggers are configured: this server starts runs only when asked (add <code>sources:</code> to
          its config, or <code>on: schedule</code> to a pipeline; see docs/triggers.md).
        </p>
      )}
      {t && t.sources.length > 0 && <Sources sources={t.sources} />}
      {t && t.awaitingApproval.length > 0 && (
        <>
          <h2 id="approval">Awaiting approval</h2>
          <p class="hint">
            A fork's pull request waits until a writer comments <code>!approve</code> on it.
          </p>
          <table class="approval" aria-labelledby="approval">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Pipeline</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {t.awaitingApproval.map((a) => (
                <tr key={`${a.key}/${a.pipeline}`} data-event={a.key}>
                  <td class="sub">{a.key}</td>
                  <td>
                    <Status status="awaiting_approval" /> {a.pipeline}
                  </td>
                  <td class="why">{a.reason ?? "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {t && t.events.length > 0 && <Events events={t.events} />}
      {t && t.schedules.length > 0 && (
        <>
          <h2 id="schedules">Schedules</h2>
          <table class="schedules" aria-labelledby="schedules">
            <thead>
              <tr>
                <th scope="col">Pipeline</th>
                <th scope="col">Cron</th>
                <th scope="col">Time zone</th>
                <th scope="col">Last fired for</th>
              </tr>
            </thead>
            <tbody>
              {t.schedules.map((s) => (
                <tr key={`${s.source}/${s.pipeline}/${s.cron}`} data-pipeline={s.pipeline}>
                  <td>{s.pipeline}</td>
                  <td>
                    <code>{s.cron}</code>
                  </td>
                  <td>{s.timeZone}</td>
                  <td>{formatTime(s.lastFiredFor)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </main>
  );
}

function Sources(props: { sources: TriggersResponse["sources"] }) {
  return (
    <table class="sources" aria-labelledby="sources">
      <thead>
        <tr>
          <th scope="col">Source</th>
          <th scope="col">Polled every</th>
          <th scope="col">Last poll</th>
          <th scope="col">Outcome</th>
          <th scope="col">Next poll</th>
          <th scope="col">Refs</th>
          <th scope="col">Polled by</th>
        </tr>
      </thead>
      <tbody>
        {props.sources.map((s) => (
          <tr key={s.name} data-source={s.name}>
            <th scope="row">
              {s.name} <span class="sub">{s.kind}</span>
              <div class="sub">{s.url}</div>
            </th>
            <td>{formatDuration(s.pollMs)}</td>
            <td class="last-poll">{s.lastPollAt === null ? "not yet" : formatTime(s.lastPollAt)}</td>
            <td class="outcome">
              {s.outcome === null ? (
                "–"
              ) : (
                <>
                  <Status status={s.outcome === "ok" ? "ok" : "failing"} />
                  {s.outcome !== "ok" && <div class="why">{s.outcome}</div>}
                  {s.failures > 0 && <div class="sub">{s.failures} failures in a row</div>}
                </>
              )}
            </td>
            <td>{formatTime(s.nextPollAt)}</td>
            <td>{s.refs}</td>
            {/* The worker holding the source's lease: one of a cluster polls it. */}
            <td class="polled-by">{s.polledBy ?? "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Events(props: { events: TriggersResponse["events"] }) {
  return (
    <>
      <h2 id="events">Recent events</h2>
      <table class="events" aria-labelledby="events">
        <thead>
          <tr>
            <th scope="col">Seen</th>
            <th scope="col">Source</th>
            <th scope="col">Event</th>
            <th scope="col">Verdicts</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((e) => (
            <tr key={e.key} data-event={e.key}>
              <td>{formatTime(e.seenAt)}</td>
              <td>{e.source}</td>
              <td>
                {e.summary}
                <div class="sub">{e.kind}</div>
              </td>
              <td>
                {e.verdicts.length === 0 ? (
                  <span class="hint">no pipeline of this source</span>
                ) : (
                  <ul class="verdicts">
                    {e.verdicts.map((v) => (
                      <li key={v.pipeline} data-pipeline={v.pipeline} data-verdict={v.verdict}>
                        <Status status={v.verdict} /> <strong>{v.pipeline}</strong>
                        {v.verdict === "started" && v.runId !== null && (
                          <>
                            {": run "}
                            <Link href={runPath(v.runId)}>{v.runId}</Link>
                          </>
                        )}
                        {v.reason !== null && <span class="why">: {v.reason}</span>}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
