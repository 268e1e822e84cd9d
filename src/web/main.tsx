/** The dashboard's page: sign-in first, then the runs, a run, the queue, resources, triggers, workers; routed on the client. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { type Caller, signOut, whenSignedOut, whoAmI } from "./api.js";
import { QueueView } from "./queue.js";
import { ResourcesView } from "./resources.js";
import { Link, navigate, useLocation } from "./router.js";
import { RunPage } from "./run-page.js";
import { RunsList } from "./runs-list.js";
import { SignIn } from "./sign-in.js";
import { TriggersView } from "./triggers.js";
import { WorkersView } from "./workers.js";
import "./style.css";

function App() {
  // undefined: not known yet; null: not signed in.
  const [caller, setCaller] = useState<Caller | null | undefined>(undefined);
  const url = useLocation();
  useEffect(() => {
    whenSignedOut(() => setCaller(null));
    void whoAmI().then((who) => setCaller(who ?? null));
  }, []);
  if (caller === undefined) return null;
  // A wrong or missing token sees the sign-in page and nothing else.
  if (caller === null) return <SignIn onSignedIn={setCaller} />;
  const path = url.pathname;
  const run = /^\/runs\/([^/]+)$/.exec(path);
  let view = <RunsList query={url.searchParams} />;
  if (run) view = <RunPage id={decodeURIComponent(run[1]!)} caller={caller} key={run[1]} />;
  else if (path === "/queue") view = <QueueView />;
  else if (path === "/resources") view = <ResourcesView />;
  else if (path === "/triggers") view = <TriggersView />;
  else if (path === "/workers") view = <WorkersView />;
  return (
    <>
      <nav class="top" aria-label="Main">
        <Link href="/" class={path === "/" ? "brand current" : "brand"}>
          Slipway
        </Link>
        <Link href="/" class={path === "/" || run ? "current" : undefined}>
          Runs
        </Link>
        <Link href="/queue" class={path === "/queue" ? "current" : undefined}>
          Queue
        </Link>
        <Link href="/resources" class={path === "/resources" ? "current" : undefined}>
          Resources
        </Link>
        <Link href="/triggers" class={path === "/triggers" ? "current" : undefined}>
          Triggers
        </Link>
        <Link href="/workers" class={path === "/workers" ? "current" : undefined}>
          Workers
        </Link>
        <span class="who" data-role={caller.role}>
          {caller.name} ({caller.role})
        </span>
        <button
          type="button"
          class="link"
          onClick={async () => {
            await signOut();
            setCaller(null);
            navigate("/");
          }}
        >
          Sign out
        </button>
      </nav>
      {view}
    </>
  );
}

render(<App />, document.getElementById("app")!);
