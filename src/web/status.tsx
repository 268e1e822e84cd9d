/** Statuses as people read them: an icon and a word, never a colour alone. */

const ICONS: Record<string, string> = {
  completed: "✓",
  failed: "✗",
  running: "▶",
  waiting: "‖",
  retrying: "↻",
  undoing: "↶",
  undone: "↩",
  undo_failed: "⚠",
  compensating: "↶",
  compensated: "↩",
  needs_attention: "⚠",
  cancelled: "⊘",
  pending: "○",
  queued: "⋯",
};

/** How a status is written for people: `needs_attention` is "needs attention". */
export function statusText(status: string): string {
  return status.replace(/_/g, " ");
}

export function statusIcon(status: string): string {
  return ICONS[status] ?? "•";
}

export function Status(props: { status: string }) {
  return (
    <span class={`status status-${props.status}`} data-status={props.status}>
      <span aria-hidden="true">{statusIcon(props.status)}</span> {statusText(props.status)}
    </span>
  );
}

/** A time as the server's people read it: local clock time, with the date when it is not today. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  const at = new Date(ms);
  const today = new Date().toDateString() === at.toDateString();
  return today ? at.toLocaleTimeString() : at.toLocaleString();
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
