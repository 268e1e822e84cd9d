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
  // Trigger verdicts, polls (the Triggers view) and workers (the Workers view).
  started: "▶",
  ignored: "⊘",
  awaiting_approval: "‖",
  ok: "✓",
  failing: "✗",
  alive: "✓",
  offline: "✗",
  // A job's measured peak against what it declares (the Resources view).
  over: "▲",
  within: "✓",
  unmeasured: "?",
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

/** Bytes as people read them: `512 MiB`, `1.5 GiB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
