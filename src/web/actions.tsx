/**
 * What an `operate` token may do to a run, each after a confirmation: cancel, retry, resume, send a
 * signal a job waits for. Shown only to roles that may; the server refuses the others anyway.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { type ActionResponse, ENDED, post, type RunDetail, runPath } from "./api.js";

interface Pending {
  title: string;
  /** What it does, in a sentence, for the confirmation. */
  detail: string;
  /** A signal's payload is typed in the confirmation. */
  payload?: boolean;
  act: (payload: unknown) => Promise<{ message?: string }>;
}

export function Actions(props: { run: RunDetail; onDone: () => void }) {
  const { run } = props;
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [said, setSaid] = useState<{ text: string; error: boolean } | undefined>(undefined);
  const path = (rest: string) => runPath(run.id, rest);
  const signals = run.steps
    .filter((s) => s.status === "waiting" && typeof s.state?.signal === "string")
    .map((s) => String(s.state!.signal));
  const actions: Pending[] = [];
  if (!ENDED.includes(run.status))
    actions.push({
      title: "Cancel",
      detail: "Stop its running jobs and undo the completed ones.",
      act: () => post<ActionResponse>(path("/cancel"), { reason: "cancelled from the dashboard" }),
    });
  if (run.status === "failed")
    actions.push({
      title: "Retry",
      detail: "Continue the held run from its failed jobs.",
      act: () => post<ActionResponse>(path("/retry")),
    });
  if (run.status === "needs_attention")
    actions.push({
      title: "Resume",
      detail: "Continue the run where its last recorded step left it.",
      act: () => post<ActionResponse>(path("/resume")),
    });
  for (const name of [...new Set(signals)])
    actions.push({
      title: `Send signal ${name}`,
      detail: `Deliver the signal "${name}" a job waits for; its payload becomes that job's outputs.`,
      payload: true,
      act: (payload) =>
        post<{ seq: number }>(path(`/signals/${encodeURIComponent(name)}`), payload).then(() => ({
          message: `signal ${name} sent`,
        })),
    });
  if (actions.length === 0) return null;
  return (
    <div class="actions">
      {actions.map((a) => (
        <button
          type="button"
          key={a.title}
          data-action={a.title.split(" ")[0]!.toLowerCase()}
          onClick={() => setPending(a)}
        >
          {a.title}
        </button>
      ))}
      {said && (
        <span class={said.error ? "error" : "notice"} role="status">
          {said.text}
        </span>
      )}
      {pending && (
        <Confirm
          action={pending}
          onClose={() => setPending(undefined)}
          onResult={(text, error) => {
            setSaid({ text, error });
            props.onDone();
          }}
        />
      )}
    </div>
  );
}

/** A modal dialog: focus is inside it, Escape or "Keep it" backs out. */
function Confirm(props: {
  action: Pending;
  onClose: () => void;
  onResult: (text: string, error: boolean) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [payload, setPayload] = useState("{}");
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const confirm = async () => {
    let value: unknown = {};
    if (props.action.payload) {
      try {
        value = JSON.parse(payload || "{}");
      } catch (error) {
        setProblem(`the payload is not JSON: ${(error as Error).message}`);
        return;
      }
    }
    setBusy(true);
    try {
      const answer = await props.action.act(value);
      props.onResult(answer.message ?? `${props.action.title}: done`, false);
    } catch (error) {
      props.onResult(`${props.action.title} refused: ${(error as Error).message}`, true);
    }
    dialog.current?.close();
  };
  return (
    <dialog ref={dialog} class="confirm" onClose={props.onClose} aria-labelledby="confirm-title">
      <h2 id="confirm-title">{props.action.title}?</h2>
      <p>{props.action.detail}</p>
      {props.action.payload && (
        <label>
          Payload (JSON)
          <textarea rows={3} value={payload} onInput={(event) => setPayload(event.currentTarget.value)} />
        </label>
      )}
      {problem && <p class="error">{problem}</p>}
      <div class="buttons">
        <button type="button" class="danger" data-confirm="yes" disabled={busy} onClick={confirm}>
          {props.action.title}
        </button>
        <button type="button" onClick={() => dialog.current?.close()}>
          Keep it
        </button>
      </div>
    </dialog>
  );
}
