/**
 * The runs service over HTTP: the same `RunService` a process hosts in-process, answered by a
 * `slipway serve` at `baseUrl`. Refusals come back as `RemoteError`s that keep the server's code,
 * message and problems, so a caller handles them as it handles the in-process service's errors.
 */

import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ENDING_EVENTS, type RunEvent } from "../engine/events.js";
import type { Json } from "../json.js";
import type { ChangeOptions, RunChange } from "../runs/changes.js";
import type {
  ActionResponse,
  ErrorResponse,
  QueueEntry,
  QueueResponse,
  ResourcesResponse,
  RunDetail,
  RunSummary,
  SignalResponse,
  SubmitRequest,
  SubmitResponse,
  WorkersResponse,
} from "../runs/schemas.js";
import type {
  EventOptions,
  ListQuery,
  LogOptions,
  PipelineSource,
  PruneOptions,
  PruneResult,
  RunPage,
  RunService,
  SignalOptions,
  SubmitOptions,
} from "../runs/service.js";
import { STOPPED_STATUSES } from "../storage/types.js";
import type { TriggersResponse } from "../triggers/schemas.js";
import { API_PREFIX } from "./routes.js";

/** A request the server refused, or one that could not be made (`status` undefined: no answer). */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly code: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = "RemoteError";
  }
}

export interface HttpRunsOptions {
  /** The server, e.g. `http://127.0.0.1:7420`. */
  baseUrl: string;
  token: string;
  /** Makes the requests: `globalThis.fetch` by default; a Hono app's `request` in tests. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Between reconnections of a dropped event stream: `attempt` → ms. Default 200 ms doubling. */
  reconnectDelayMs?: (attempt: number) => number;
}

export class HttpRuns implements RunService {
  readonly detached = true;
  readonly baseUrl: string;
  readonly #token: string;
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  readonly #delay: (attempt: number) => number;

  constructor(options: HttpRunsOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
    this.#delay = options.reconnectDelayMs ?? ((attempt) => 200 * 2 ** attempt);
  }

  submit(what: PipelineSource, options: SubmitOptions = {}): Promise<SubmitResponse> {
    const body: SubmitRequest = {
      ...("pipeline" in what
        ? { pipeline: what.pipeline }
        : { file: { name: what.file, source: what.source } }),
      inputs: options.inputs ?? {},
      tiers: [...(options.tiers ?? [])],
      ...(options.name !== undefined && { name: options.name }),
      ...(options.key !== undefined && { key: options.key }),
      ...(options.event !== undefined && { event: options.event as NonNullable<SubmitRequest["event"]> }),
      ...(options.workspace !== undefined && { workspace: options.workspace }),
      ...(options.untrusted !== undefined && { untrusted: options.untrusted }),
    };
    return this.#json("POST", "/runs", body);
  }

  list(query: Omit<ListQuery, "limit" | "cursor"> = {}): Promise<RunSummary[]> {
    return this.#json("GET", `/runs${listQuery(query)}`);
  }

  page(query: ListQuery & { limit: number }): Promise<RunPage> {
    return this.#json("GET", `/runs${listQuery(query)}`);
  }

  show(ref: string): Promise<RunDetail> {
    return this.#json("GET", runPath(ref));
  }

  async logs(ref: string, options: LogOptions = {}): Promise<AsyncIterable<string>> {
    const query = new URLSearchParams({
      ...(options.job !== undefined && { job: options.job }),
      ...(options.follow && { follow: "1" }),
      ...(options.since !== undefined && { since: String(options.since) }),
      ...(options.until !== undefined && { until: String(options.until) }),
      ...(options.tail !== undefined && { tail: String(options.tail) }),
    });
    const response = await this.#request(runPath(ref, `/logs?${query}`), {
      ...(options.signal && { signal: options.signal }),
    });
    return text(response);
  }

  async events(ref: string, options: EventOptions = {}): Promise<AsyncIterable<RunEvent>> {
    // The first request is made here, so an unknown run or a refused token throws before streaming.
    const first = await this.#openEvents(ref, options.after ?? 0, options.signal);
    return this.#events(ref, first, options.after ?? 0, options.signal);
  }

  async changes(options: ChangeOptions = {}): Promise<AsyncIterable<RunChange>> {
    const first = await this.#openChanges(options.after, options.signal);
    return this.#changes(first, options.after, options.signal);
  }

  cancel(ref: string, reason?: string): Promise<ActionResponse> {
    return this.#json("POST", runPath(ref, "/cancel"), reason === undefined ? {} : { reason });
  }

  signal(
    ref: string,
    name: string,
    payload: Json = {},
    options: SignalOptions = {},
  ): Promise<SignalResponse> {
    const key: Record<string, string> = options.key === undefined ? {} : { "idempotency-key": options.key };
    return this.#json("POST", runPath(ref, `/signals/${encodeURIComponent(name)}`), payload, key);
  }

  retry(ref: string): Promise<ActionResponse> {
    return this.#json("POST", runPath(ref, "/retry"));
  }

  resume(ref: string): Promise<ActionResponse> {
    return this.#json("POST", runPath(ref, "/resume"));
  }

  prune(options: PruneOptions): Promise<PruneResult> {
    return this.#json("POST", "/prune", options);
  }

  async queue(): Promise<QueueEntry[]> {
    return (await this.#json<QueueResponse>("GET", "/queue")).jobs;
  }

  resources(): Promise<ResourcesResponse> {
    return this.#json("GET", "/resources");
  }

  workers(): Promise<WorkersResponse> {
    return this.#json("GET", "/workers");
  }

  /** The server's trigger sources, recent events with their verdicts, schedules (`GET /triggers`). */
  triggers(options: { limit?: number } = {}): Promise<TriggersResponse> {
    return this.#json("GET", `/triggers${options.limit === undefined ? "" : `?limit=${options.limit}`}`);
  }

  async close(): Promise<void> {}

  /** A JSON request to `/api/v1<path>`; the parsed response, or a RemoteError. */
  async #json<T>(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const response = await this.#request(path, {
      method,
      headers: { ...headers, ...(body !== undefined && { "content-type": "application/json" }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return (await response.json()) as T;
  }

  /** A request whose OK response is returned as it is (for streams); a refusal throws a RemoteError. */
  async #request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = `${this.baseUrl}${API_PREFIX}${path}`;
    let response: Response;
    try {
      response = await this.#fetch(url, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${this.#token}` },
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RemoteError(
        `cannot reach the server at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message}): is slipway serve running there?`,
        undefined,
        "unreachable",
      );
    }
    if (response.ok) return response;
    const body = await response.text();
    let error: ErrorResponse["error"] | undefined;
    try {
      error = (JSON.parse(body) as ErrorResponse).error;
    } catch {
      // Not ours (a proxy's page): the status says enough.
    }
    if (response.status === 401)
      throw new RemoteError(
        `the server refused the token (${error?.message ?? "401"}): check --token-file, --token, SLIPWAY_TOKEN or SLIPWAY_TOKEN_FILE`,
        401,
        "unauthorized",
      );
    throw new RemoteError(
      error?.message ?? `${response.status} ${response.statusText}`,
      response.status,
      error?.code ?? "http",
      error?.problems,
    );
  }

  #openEvents(ref: string, after: number, signal: AbortSignal | undefined): Promise<Response> {
    return this.#request(runPath(ref, "/events"), {
      headers: { accept: "text/event-stream", "last-event-id": String(after) },
      ...(signal && { signal }),
    });
  }

  /**
   * Reads the Server-Sent Events until the server ends the stream after the run ends. A dropped
   * connection is resumed after the last event seen (`Last-Event-ID`), a few times.
   */
  async *#events(
    ref: string,
    first: Response,
    after: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<RunEvent> {
    let last = after;
    let response: Response | undefined = first;
    for (let attempt = 0; !signal?.aborted; attempt++) {
      try {
        response ??= await this.#openEvents(ref, last, signal);
        let ended = false;
        for await (const event of sse(response)) {
          if (event.seq !== undefined) last = event.seq;
          if (ENDING_EVENTS.has(event.type)) ended = true;
          yield event;
        }
        if (ended) return;
        // Closed with no ending event: the run had stopped already, or the connection (or server) went.
        const run = await this.show(ref);
        // A run in one of these has nothing more to say.
        if (STOPPED_STATUSES.includes(run.status)) return;
      } catch (error) {
        if (signal?.aborted) return;
        if ((error instanceof RemoteError && error.status !== undefined) || attempt >= 5) throw error;
      }
      response = undefined;
      await new Promise((resolve) => setTimeout(resolve, this.#delay(attempt)));
    }
  }

  #openChanges(after: string | undefined, signal: AbortSignal | undefined): Promise<Response> {
    return this.#request("/events", {
      headers: { accept: "text/event-stream", ...(after !== undefined && { "last-event-id": after }) },
      ...(signal && { signal }),
    });
  }

  /** The server's notices until `signal` aborts; a dropped connection resumes after the last cursor seen. */
  async *#changes(
    first: Response,
    after: string | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<RunChange> {
    let last = after;
    let response: Response | undefined = first;
    for (let attempt = 0; !signal?.aborted; attempt++) {
      try {
        response ??= await this.#openChanges(last, signal);
        for await (const message of messages(response)) {
          const change = { ...JSON.parse(message.data), cursor: message.id } as RunChange;
          last = change.cursor;
          attempt = 0;
          yield change;
          // Aborted while the caller held this notice: stop reading (a fetch without the signal reads on).
          if (signal?.aborted) return;
        }
      } catch (error) {
        if (signal?.aborted) return;
        if ((error instanceof RemoteError && error.status !== undefined) || attempt >= 5) throw error;
      }
      response = undefined;
      await new Promise((resolve) => setTimeout(resolve, this.#delay(attempt)));
    }
  }
}

/** `/runs/<id>` with the id or name escaped. */
export function runPath(ref: string, rest = ""): string {
  return `/runs/${encodeURIComponent(ref)}${rest}`;
}

function listQuery(query: ListQuery): string {
  const params = new URLSearchParams();
  if (query.statuses?.length) params.set("status", query.statuses.join(","));
  for (const key of ["pipeline", "name", "key", "concurrency", "trigger", "cursor"] as const) {
    const value = query[key];
    if (value !== undefined) params.set(key, value);
  }
  if (query.text) params.set("q", query.text);
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

async function* text(response: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    const piece = decoder.decode(chunk, { stream: true });
    if (piece !== "") yield piece;
  }
}

async function* sse(response: Response): AsyncGenerator<RunEvent> {
  for await (const message of messages(response)) yield JSON.parse(message.data) as RunEvent;
}

async function* messages(response: Response): AsyncGenerator<EventSourceMessage> {
  const parsed: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => parsed.push(message) });
  for await (const chunk of text(response)) {
    parser.feed(chunk);
    yield* parsed.splice(0);
  }
}
