/** The dashboard's calls to the server: the API with the sign-in cookie, streams read as they come. */
import type { ConfigResponse, RunSummary } from "../runs/schemas.js";

export type {
  ActionResponse,
  ChildRun,
  JobUsage,
  PoolHolder,
  QueueEntry,
  ResourcesResponse,
  RunDetail,
  RunSummary,
  StepSummary,
  WaitingJob,
  WorkerInfo,
  WorkersResponse,
} from "../runs/schemas.js";
export type { TriggersResponse } from "../triggers/schemas.js";
export type RunStatus = RunSummary["status"];

/** A token's role, as the server's config names it. */
export type Role = ConfigResponse["tokens"][number]["role"];

/** Who the signed-in token belongs to. */
export interface Caller {
  name: string;
  role: Role;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Told when the server no longer knows the cookie (signed out elsewhere, server restarted with new tokens). */
let onSignedOut: () => void = () => {};
export function whenSignedOut(listener: () => void): void {
  onSignedOut = listener;
}

async function failure(response: Response): Promise<HttpError> {
  let code = "error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code: string; message: string } };
    if (body.error) ({ code, message } = body.error);
  } catch {
    // Not the API's error shape: the status says it.
  }
  return new HttpError(response.status, code, message);
}

/** A JSON request to `/api/v1<path>`, with the cookie. */
export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(`/api/v1${path}`, {
    credentials: "same-origin",
    ...init,
    headers: { accept: "application/json", ...(init.body ? { "content-type": "application/json" } : {}) },
  });
  if (response.status === 401) onSignedOut();
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

export function post<T>(path: string, body?: unknown): Promise<T> {
  return api<T>(path, { method: "POST", ...(body !== undefined && { body: JSON.stringify(body) }) });
}

export function runPath(id: string, rest = ""): string {
  return `/runs/${encodeURIComponent(id)}${rest}`;
}

export async function whoAmI(): Promise<Caller | undefined> {
  const response = await fetch("/session", { credentials: "same-origin" });
  return response.ok ? ((await response.json()) as Caller) : undefined;
}

export async function signIn(token: string): Promise<Caller> {
  const response = await fetch("/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as Caller;
}

export async function signOut(): Promise<void> {
  await fetch("/session", { method: "DELETE", credentials: "same-origin" });
}

const ROLES: readonly Role[] = ["read", "operate", "admin"];
/** Whether `role` may do what `needed` may (the server checks it again: this only hides buttons). */
export function allows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** Statuses a run never leaves. */
export const ENDED: readonly RunStatus[] = ["completed", "compensated", "cancelled"];
/** Statuses in which the server is still working on a run. */
export const ACTIVE: readonly RunStatus[] = ["running", "waiting", "compensating"];

/**
 * Reads a streamed text response chunk by chunk until it ends or `signal` aborts; resolves when it
 * ended by itself. Used for a job's log (`follow=1`) and a run's events (SSE).
 */
export async function readStream(
  url: string,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await fetch(url, { credentials: "same-origin", signal });
  if (response.status === 401) onSignedOut();
  if (!response.ok || !response.body) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onText(value);
  }
}

/** A run's events (SSE), each message's data parsed; resolves when the server ends the stream. */
export function runEvents(
  id: string,
  onEvent: (event: { type: string; seq?: number }) => void,
  signal: AbortSignal,
): Promise<void> {
  let pending = "";
  return readStream(
    `/api/v1${runPath(id, "/events")}`,
    (text) => {
      pending += text;
      const messages = pending.split("\n\n");
      pending = messages.pop() ?? "";
      for (const message of messages) {
        const data = message
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data !== "") onEvent(JSON.parse(data) as { type: string; seq?: number });
      }
    },
    signal,
  );
}
