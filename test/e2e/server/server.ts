/**
 * Test helpers for a real `slipway serve` process: start it in a project (a child process of the CLI harness,
 * killed after the test and checked by test/leaks.ts), call its API, read a run's events over SSE to their end,
 * wait for a status.
 */

import { createParser } from "eventsource-parser";
import type { RunEvent } from "../../../src/engine/events.js";
import type { RunDetail, RunSummary } from "../../../src/runs/schemas.js";
import { eventually, WAIT_MS } from "../../wait.js";
import type { Project, Running } from "../cli/harness.js";

export const TOKEN = "test-token";

export interface Server {
  url: string;
  process: Running;
  /** A request to `/api/v1<path>` with the token (or `token`), every request bounded. */
  api(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  /** A JSON request; fails the test on a status other than `expect`. */
  json<T>(method: string, path: string, body?: unknown, expect?: number): Promise<T>;
  /** Every event of the run, from the SSE stream, until the server ends it. */
  events(id: string, lastEventId?: number): Promise<RunEvent[]>;
  /** Polls the run until its status is one of `statuses` (at most twice `WAIT_MS`: runs take a while). */
  status(id: string, ...statuses: string[]): Promise<RunDetail>;
  /** The `slipway` arguments that point a command at this server. */
  flags: string[];
}

export interface ServerOptions {
  /** How the server gets its admin token: `--token TOKEN` unless told (e.g. `["--token-file", F]`, or none). */
  tokenArgs?: readonly string[];
  /** More environment for the server process. */
  env?: NodeJS.ProcessEnv;
  /** The token requests carry unless told: `TOKEN` unless told. */
  token?: string;
  /** The database (`--db`): the project's unless told (a PostgreSQL URL several servers share). */
  db?: string;
}

export async function startServer(
  project: Project,
  extra: readonly string[] = [],
  options: ServerOptions = {},
): Promise<Server> {
  const tokenArgs = options.tokenArgs ?? ["--token", TOKEN];
  const running = project.start(
    ["serve", "--port", "0", "--db", options.db ?? project.db, ...tokenArgs, ...extra],
    options.env,
  );
  const [, url] = (await running.waitFor(/listening on (http:\/\/\S+)/)) as unknown as [string, string];
  const api: Server["api"] = (path, init = {}) => {
    const { token = options.token ?? TOKEN, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (token !== null) headers.set("authorization", `Bearer ${token}`);
    return fetch(`${url}/api/v1${path}`, { signal: AbortSignal.timeout(20_000), ...rest, headers });
  };
  const json: Server["json"] = async <T>(method: string, path: string, body?: unknown, expect = 200) => {
    const response = await api(path, {
      method,
      ...(body !== undefined && {
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      }),
    });
    const text = await response.text();
    if (response.status !== expect)
      throw new Error(`${method} ${path}: ${response.status}, expected ${expect}: ${text}`);
    return JSON.parse(text) as T;
  };
  return {
    url,
    process: running,
    api,
    json,
    flags: ["--server", url, "--token", options.token ?? TOKEN],
    async events(id, lastEventId) {
      const response = await api(`/runs/${id}/events`, {
        headers: lastEventId === undefined ? {} : { "last-event-id": String(lastEventId) },
      });
      if (response.status !== 200) throw new Error(`events: ${response.status} ${await response.text()}`);
      const events: RunEvent[] = [];
      const parser = createParser({
        onEvent: (message) => {
          const event = JSON.parse(message.data) as RunEvent;
          if (message.event !== event.type)
            throw new Error(`SSE event ${message.event} carries ${event.type}`);
          events.push(event);
        },
      });
      // Read chunk by chunk: the stream ends when the server closes it, after the run ends.
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
        parser.feed(decoder.decode(chunk, { stream: true }));
      return events;
    },
    async status(id, ...statuses) {
      let last = "not read yet";
      return eventually(
        async () => {
          const run = await json<RunDetail>("GET", `/runs/${id}`);
          last = run.status;
          return statuses.includes(run.status) && run;
        },
        () => `run ${id} to be ${statuses.join(" or ")} (it is ${last})`,
        { timeoutMs: 2 * WAIT_MS, intervalMs: 50 },
      );
    },
  };
}

/** The runs the server lists (with a good token). */
export async function listRuns(server: Server): Promise<RunSummary[]> {
  return server.json<RunSummary[]>("GET", "/runs");
}
