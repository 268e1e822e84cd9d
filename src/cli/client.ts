/**
 * The CLI's side of `slipway serve`: where the server is (`--server URL` or `SLIPWAY_SERVER`), its
 * token (`--token` or `SLIPWAY_TOKEN`), and requests with errors a person can act on (server down,
 * token refused, the server's own message and problems for anything else it refused).
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ENDING_EVENTS, type ExecutionEvent } from "../engine/events.js";
import type { ErrorResponse, RunSummary } from "../server/schemas.js";
import { EXIT, type Io, UsageError } from "./command.js";

/** The options every command that can talk to a server takes. */
export const serverOptions = { server: { type: "string" }, token: { type: "string" } } as const;

/** A request the server refused (or could not be made); `problems` are the server's detail lines. */
export class ServerError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = "ServerError";
  }
}

/** The client for `--server`/`SLIPWAY_SERVER`, or undefined when neither is set (the command runs embedded). */
export function serverClient(values: {
  server?: string | undefined;
  token?: string | undefined;
}): Client | undefined {
  const server = values.server ?? process.env.SLIPWAY_SERVER;
  if (server === undefined || server === "") return undefined;
  const token = values.token ?? process.env.SLIPWAY_TOKEN;
  if (token === undefined || token === "")
    throw new UsageError(`a token is needed for ${server}: --token TOKEN or SLIPWAY_TOKEN`);
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new UsageError(`--server wants a URL such as http://127.0.0.1:7420, got "${server}"`);
  }
  return new Client(base.href.replace(/\/+$/, ""), token);
}

export class Client {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  /** A JSON request to `/api/v1<path>`; the parsed response, or a ServerError. */
  async json<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(path, {
      method,
      ...(body !== undefined && {
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      }),
    });
    return (await response.json()) as T;
  }

  /** A request whose OK response is returned as it is (for streams); a refusal throws a ServerError. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const url = `${this.baseUrl}/api/v1${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.token}` },
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new ServerError(
        `cannot reach the server at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message}): is slipway serve running there?`,
        undefined,
      );
    }
    if (response.ok) return response;
    const text = await response.text();
    let error: ErrorResponse["error"] | undefined;
    try {
      error = (JSON.parse(text) as ErrorResponse).error;
    } catch {
      // Not ours (a proxy's page): the status says enough.
    }
    if (response.status === 401)
      throw new ServerError(
        `the server refused the token (${error?.message ?? "401"}): check --token or SLIPWAY_TOKEN`,
        401,
      );
    throw new ServerError(
      error?.message ?? `${response.status} ${response.statusText}`,
      response.status,
      error?.problems,
    );
  }

  /**
   * Follows a run's events (Server-Sent Events) until the server ends the stream after the run ends.
   * A dropped connection is resumed after the last event seen (`Last-Event-ID`), a few times.
   */
  async events(id: string, after: number, onEvent: (event: ExecutionEvent) => void): Promise<void> {
    let last = after;
    for (let attempt = 0; ; attempt++) {
      try {
        let ended = false;
        const response = await this.fetch(runPath(id, "/events"), {
          headers: { accept: "text/event-stream", "last-event-id": String(last) },
        });
        const parser = createParser({
          onEvent(message: EventSourceMessage) {
            const event = JSON.parse(message.data) as ExecutionEvent;
            if (event.seq !== undefined) last = event.seq;
            if (ENDING_EVENTS.has(event.type)) ended = true;
            onEvent(event);
          },
        });
        const decoder = new TextDecoder();
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
          parser.feed(decoder.decode(chunk, { stream: true }));
        if (ended) return;
        // Closed with no ending event: the run had stopped already, or the connection (or server) went.
        const run = await this.json<RunSummary>("GET", runPath(id));
        if (STOPPED.includes(run.status)) return;
      } catch (error) {
        if ((error instanceof ServerError && error.status !== undefined) || attempt >= 5) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }
}

/** Statuses a run stays in until someone acts: its events stream has nothing more to say. */
const STOPPED: readonly string[] = ["completed", "compensated", "cancelled", "needs_attention", "failed"];

/**
 * Runs a remote command: a refusal is printed as `slipway: <message>` with the server's problems, one
 * a line; exit 2 for a request the server found invalid (a pipeline with problems), else 1.
 */
export async function remote(io: Io, action: () => Promise<number>): Promise<number> {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    io.err(`slipway: ${error.message}\n${error.problems.map((p) => `${p}\n`).join("")}`);
    return error.status === 400 ? EXIT.usage : EXIT.failed;
  }
}

/** `/runs/<id>` with the id or name escaped. */
export function runPath(ref: string, rest = ""): string {
  return `/runs/${encodeURIComponent(ref)}${rest}`;
}
