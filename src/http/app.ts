/**
 * The HTTP API of `slipway serve`, with Hono: versioned under `/api/v1/`, named bearer tokens with
 * roles (auth.ts), mutating requests recorded in the audit log (audit.ts), bodies validated with zod
 * at the boundary, every error mapped to a status and a JSON body in the one `onError`, run events
 * as Server-Sent Events.
 */
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE, streamText } from "hono/streaming";
import type { Logger } from "pino";
import { z } from "zod";
import { type Json, jsonTooDeep, tooDeepMessage } from "../json.js";
import {
  type ConfigResponse,
  cancelRequest,
  pruneRequest,
  runStatus,
  signalPayload,
  submitRequest,
} from "../runs/schemas.js";
import type { AuditLog, RunService } from "../runs/service.js";
import type { StorageHealth } from "../storage/types.js";
import { type HookDeps, receiveHook } from "../triggers/receiver.js";
import type { TriggerView } from "../triggers/schemas.js";
import { type ApiEnv, accessControl } from "./access.js";
import { RequestLog } from "./audit.js";
import { DEFAULT_TOKEN_NAME, type TokenEntry, Tokens } from "./auth.js";
import { routeChanges } from "./changes.js";
import { ApiError, toHttpError } from "./errors.js";
import { type MetricsRoute, routeMetrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { API_PREFIX } from "./routes.js";
import { Turns } from "./turns.js";
import { dashboard } from "./web.js";

export { API_PREFIX, type ApiEnv };

export interface AppOptions {
  /** What the API serves: the runs service (the server's in-process one). */
  runs: RunService;
  /** Where requests that failed on the server's side are logged. */
  logger: Logger;
  /** One `admin` token (named `default`) every request but `/healthz` may carry. */
  token?: string | undefined;
  /** Named tokens with their roles (the server config's `tokens:`), beside `token`. */
  tokens?: readonly TokenEntry[] | undefined;
  /** Where mutating requests are recorded; without it they are not, and `GET /audit` is empty. */
  audit?: AuditLog | undefined;
  /** The server's configuration for `GET /config` (the app adds its tokens' names and roles). */
  config?: (() => Omit<ConfigResponse, "tokens">) | undefined;
  /** Largest request body accepted, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Sources, recent trigger events and their verdicts, for `GET /triggers`; absent: none configured. */
  triggers?: TriggerView | undefined;
  /** Forge webhook deliveries for `POST /hooks/{source}`; absent: that route answers 404. */
  hooks?: HookDeps | undefined;
  /** Between SSE keep-alive comments, so proxies don't drop a quiet stream. Default 15 s. */
  keepAliveMs?: number;
  /** The built web dashboard (`dist/web`), served at `/` with its sign-in; absent or unbuilt: `/` says so. */
  web?: string | undefined;
  /** Whether the database is reachable, for `/healthz` (a PostgreSQL server's storage knows). */
  storageHealth?: (() => StorageHealth | undefined) | undefined;
  /** Prometheus metrics at `GET /metrics` (http/metrics.ts); absent: that route answers 404. */
  metrics?: MetricsRoute | undefined;
}

const statusQuery = z.array(runStatus).optional();
const limitQuery = z.coerce.number().int().min(1).max(10_000).optional();
const timeQuery = z.coerce.number().int().optional();
const tailQuery = z.coerce.number().int().min(1).optional();
const beforeQuery = z.coerce.number().int().min(1).optional();

/** A finished log up to this size is answered in one piece, a longer one streamed. */
const INLINE_LOG_CHARS = 256 * 1024;

/** An oversized body up to this size is read and dropped before the 413; a larger one closes the connection. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

export function createApp(options: AppOptions): Hono<ApiEnv> {
  const { runs, logger } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const tokens = new Tokens([
    ...(options.token === undefined ? [] : [Tokens.entry(DEFAULT_TOKEN_NAME, "admin", options.token)]),
    ...(options.tokens ?? []),
  ]);
  const requests = new RequestLog(options.audit, logger);
  const app = new Hono<ApiEnv>();
  /** Requests whose oversized body was read to its end (their connection can carry another request). */
  const drained = new WeakSet<Request>();

  app.onError((error, c) => {
    const { status, body } = toHttpError(error);
    if (status >= 500) logger.error({ err: error, path: c.req.path }, "request failed");
    // The rest of an oversized body was not read: the connection can't carry another request.
    if (status === 413 && !drained.has(c.req.raw)) c.header("connection", "close");
    return c.json(body, status);
  });
  app.notFound((c) => {
    const { status, body } = toHttpError(
      new ApiError(
        404,
        "not_found",
        `no route ${c.req.method} ${c.req.path} (see ${API_PREFIX}/openapi.json)`,
      ),
    );
    return c.json(body, status);
  });

  app.get("/healthz", (c) => {
    const storage = options.storageHealth?.();
    return c.json({ ok: true as const, ...(storage && { storage }) });
  });

  const tooLarge = () => {
    throw new ApiError(
      413,
      "too_large",
      `the request body is larger than the limit of ${maxBodyBytes} bytes (the server's maxBodyBytes, 1 MiB unless set: see Limits in docs/server.md)`,
    );
  };
  const streamedLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });

  // Forges cannot send a bearer token: a delivery proves itself by its signature (receiver.ts), so
  // this route sits before the token check, and reads its body raw to verify it.
  const hooks = options.hooks;
  if (hooks) {
    app.post("/hooks/:source", streamedLimit, async (c) => {
      const body = new Uint8Array(await c.req.arrayBuffer());
      const answer = await receiveHook(hooks, c.req.param("source"), (name) => c.req.header(name), body);
      return c.json(answer.body, answer.status);
    });
  }

  // Scrapers carry a token, or none when the config makes metrics public: a guard of its own.
  if (options.metrics) routeMetrics(app, options.metrics, tokens);

  // The dashboard's files and sign-in, outside the API (web.ts): nothing there waits in the API's line.
  app.use("*", dashboard({ dir: options.web, tokens }));

  // Every API request waits its turn, first come first served, a few ms of CPU of them per turn of the loop
  // (turns.ts): under load the loop keeps turning, and no request is passed over.
  const turns = new Turns();
  app.use("*", async (_c, next) => {
    await turns.take();
    await next();
  });
  // Authentication and the role check before anything else is read (access.ts).
  app.use("*", accessControl(tokens, requests));
  app.use("*", async (c, next) => {
    // Decided from the headers when they say it all, so the request is not turned into a web Request
    // with a body stream only to be measured (the node adapter reads a plain body faster without).
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
      const bytes = Number.parseInt(length, 10);
      if (bytes <= maxBodyBytes) return next();
      // Read the rest and drop it, so the client, still sending, gets the 413 rather than a broken
      // pipe, and the connection stays usable; past a bound, closing it is cheaper.
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
      if (incoming && bytes <= DRAIN_LIMIT_BYTES) {
        incoming.resume();
        if (!incoming.readableEnded) await once(incoming, "end");
        drained.add(c.req.raw);
      }
      return tooLarge();
    }
    return streamedLimit(c, next);
  });

  const api = new Hono<ApiEnv>();

  api.post("/runs", async (c) => {
    const body = submitRequest.parse(await readJson(c));
    // The `Idempotency-Key` header (as payment APIs take it) or the body's `key`: a retried POST
    // returns the run the first one started.
    const key = body.key ?? c.req.header("idempotency-key");
    const request = {
      inputs: body.inputs,
      tiers: body.tiers,
      name: body.name,
      key,
      event: body.event,
      workspace: body.workspace,
      untrusted: body.untrusted,
      // Who sent it, as the audit log names them: shown with the run.
      startedBy: c.get("caller").name,
    };
    const submitted = await runs.submit(
      body.file ? { file: body.file.name, source: body.file.source } : { pipeline: body.pipeline! },
      request,
    );
    c.set("run", submitted.id);
    return c.json(submitted, 201);
  });

  api.get("/runs", async (c) => {
    const statuses = statusQuery.parse(
      c.req
        .queries("status")
        ?.flatMap((s) => s.split(","))
        .filter(Boolean),
    );
    const query = {
      statuses,
      pipeline: c.req.query("pipeline"),
      name: c.req.query("name"),
      key: c.req.query("key"),
      text: c.req.query("q"),
      concurrency: c.req.query("concurrency"),
      trigger: c.req.query("trigger"),
    };
    const limit = limitQuery.parse(c.req.query("limit"));
    // Without a limit, every run in one array (the original shape); with one, a page and its cursor.
    if (limit === undefined) return c.json(await runs.list(query));
    return c.json(await runs.page({ ...query, limit, cursor: c.req.query("cursor") }));
  });

  api.get("/runs/:id", async (c) => c.json(await runs.show(c.req.param("id"))));

  api.get("/runs/:id/logs", async (c) => {
    const follow = ["1", "true"].includes(c.req.query("follow") ?? "");
    const aborted = new AbortController();
    const chunks = await runs.logs(c.req.param("id"), {
      job: c.req.query("job"),
      follow,
      since: timeQuery.parse(c.req.query("since")),
      until: timeQuery.parse(c.req.query("until")),
      tail: tailQuery.parse(c.req.query("tail")),
      signal: aborted.signal,
    });
    const iterator = chunks[Symbol.asyncIterator]();
    // A log read to its end (not followed) and small, as most are, is answered in one piece: a stream
    // costs the server several times more per request. The same text and type either way.
    const head: string[] = [];
    if (!follow) {
      let size = 0;
      for (let next = await iterator.next(); ; next = await iterator.next()) {
        if (next.done) {
          c.header("X-Content-Type-Options", "nosniff");
          return c.text(head.join(""));
        }
        head.push(next.value);
        size += next.value.length;
        if (size > INLINE_LOG_CHARS) break;
      }
    }
    return streamText(c, async (stream) => {
      stream.onAbort(() => aborted.abort());
      try {
        for (const chunk of head) await stream.write(chunk);
        for (let next = await iterator.next(); !next.done; next = await iterator.next())
          await stream.write(next.value);
      } finally {
        await iterator.return?.();
      }
    });
  });

  api.get("/runs/:id/events", async (c) => {
    const lastId = c.req.header("last-event-id");
    const after = lastId === undefined ? 0 : Number(lastId);
    if (!Number.isInteger(after) || after < 0)
      throw new ApiError(
        400,
        "invalid_input",
        `Last-Event-ID must be an event seq (an integer >= 0), got "${lastId}"`,
      );
    const aborted = new AbortController();
    const events = await runs.events(c.req.param("id"), { after, signal: aborted.signal });
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => aborted.abort());
      const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n").catch(() => {}), keepAliveMs);
      try {
        for await (const event of events)
          await stream.writeSSE({
            event: event.type,
            // `executionId`: the name `runId` had in 0.1, kept for clients written against it.
            data: JSON.stringify({ ...event, executionId: event.runId }),
            ...(event.seq !== undefined && { id: String(event.seq) }),
          });
      } finally {
        clearInterval(keepAlive);
      }
    });
  });

  // Server-wide notices of runs and the queue changing (changes.ts).
  routeChanges(api, runs, keepAliveMs);

  api.post("/runs/:id/cancel", async (c) => {
    const body = cancelRequest.parse((await readJson(c)) ?? {});
    return c.json(await runs.cancel(c.req.param("id"), body.reason ?? "cancelled over the API"));
  });

  api.post("/runs/:id/signals/:name", async (c) => {
    const payload = signalPayload.parse((await readJson(c)) ?? {}) as Json;
    const send = () => runs.signal(c.req.param("id"), c.req.param("name"), payload);
    // With an `Idempotency-Key`, a repeat (a client retrying after a timeout) is answered as the
    // first was, and the signal is delivered once.
    const key = c.req.header("idempotency-key");
    if (key === undefined) return c.json(await send());
    const replay = await requests.once(key, "/runs/:id/signals/:name", [c.req.path, payload], send);
    c.set("replay", replay);
    return c.json(replay.body);
  });

  api.post("/runs/:id/retry", async (c) => c.json(await runs.retry(c.req.param("id"))));
  api.post("/runs/:id/resume", async (c) => c.json(await runs.resume(c.req.param("id"))));
  api.post("/prune", async (c) => c.json(await runs.prune(pruneRequest.parse(await readJson(c)))));

  api.get("/audit", async (c) => {
    const limit = limitQuery.parse(c.req.query("limit")) ?? 100;
    const before = beforeQuery.parse(c.req.query("before"));
    const records = options.audit
      ? await options.audit.list({ limit, ...(before !== undefined && { beforeSeq: before }) })
      : [];
    const entries = records.map((r) => ({
      seq: r.seq,
      at: r.at,
      actor: r.actor,
      method: r.method,
      route: r.route,
      path: r.path,
      run: r.runId,
      status: r.status,
      key: r.key,
    }));
    const last = entries.at(-1);
    return c.json({ entries, ...(entries.length === limit && last && { next: last.seq }) });
  });

  api.get("/config", (c) => {
    if (!options.config) throw new ApiError(404, "not_found", "this server does not show its configuration");
    return c.json({ ...options.config(), tokens: tokens.list } satisfies ConfigResponse);
  });

  api.get("/queue", async (c) => c.json({ jobs: await runs.queue() }));
  api.get("/triggers", async (c) => {
    const limit = limitQuery.parse(c.req.query("limit"));
    const empty = { sources: [], events: [], awaitingApproval: [], schedules: [], reports: [] };
    return c.json(
      options.triggers ? await options.triggers.status(limit === undefined ? {} : { limit }) : empty,
    );
  });
  api.get("/resources", async (c) => c.json(await runs.resources()));
  api.get("/workers", async (c) => c.json(await runs.workers()));
  // Its name before clusters (0.3): the same list, under `executors`.
  api.get("/executors", async (c) => {
    const { workers, leaseMs } = await runs.workers();
    return c.json({ executors: workers, leaseMs });
  });
  api.get("/openapi.json", (c) => c.json(openApiDocument()));

  app.route(API_PREFIX, api);
  return app;
}

/** The body as JSON; undefined when empty. Malformed JSON is a 400 that says where it broke. */
async function readJson(c: Context<ApiEnv>): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") return undefined;
  // Checked on the text: parsing, validating and storing a value recurse once per level.
  const deep = jsonTooDeep(text);
  if (deep !== undefined)
    throw new ApiError(400, "too_deep", `${tooDeepMessage("the request body")} (at character ${deep})`);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ApiError(
      400,
      "malformed_json",
      `the request body is not valid JSON: ${(error as Error).message}`,
    );
  }
}
