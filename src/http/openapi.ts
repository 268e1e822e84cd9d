/**
 * The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`. Schemas come from the zod
 * schemas the server validates with (`schemas.ts`); a test checks that every route the app serves is
 * described here and that nothing described here is missing from the app.
 */
import { z } from "zod";
import * as api from "../runs/schemas.js";
import { triggersResponse } from "../triggers/schemas.js";
import { ROUTE_ROLES } from "./auth.js";

type JsonSchema = Record<string, unknown>;

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  description: string;
  schema: JsonSchema;
}

interface MediaContent {
  [mediaType: string]: { schema: JsonSchema };
}

interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  /** Kept for old clients; use the operation it names instead. */
  deprecated?: boolean;
  parameters?: Parameter[];
  requestBody?: { required: boolean; content: MediaContent };
  responses: Record<string, { description: string; content?: MediaContent }>;
  security?: Record<string, string[]>[];
  /** The token role the operation needs (auth.ts ROUTE_ROLES). */
  "x-slipway-role"?: string;
}

type Method = "get" | "post";

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string };
  servers: { url: string }[];
  security: Record<string, string[]>[];
  paths: Record<string, Partial<Record<Method, Operation>>>;
  components: {
    schemas: Record<string, JsonSchema>;
    securitySchemes: Record<string, { type: "http"; scheme: "bearer" }>;
  };
}

/** A component's JSON Schema from its zod schema (`input`: what a client sends, defaults optional). */
function schemaOf(schema: z.ZodType, io: "input" | "output" = "output"): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io }) as JsonSchema;
  return rest;
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string): MediaContent => ({ "application/json": { schema: ref(name) } });

const errors = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      String(status),
      { description: ERROR_TEXT[status] ?? "Error", content: json("Error") },
    ]),
  );

const ERROR_TEXT: Record<number, string> = {
  400: "Invalid request: malformed JSON, a body that fails validation, or a pipeline with problems",
  401: "Missing or unknown bearer token; nothing was changed",
  403: "The token's role may not do this (read < operate < admin); nothing was changed",
  404: "No such run (or job)",
  409: "The run is not in a state that allows this",
  413: "The request body is larger than the limit",
  507: "The disk under the server's database or logs is full: nothing was changed; reads still work",
};

const runId: Parameter = {
  name: "id",
  in: "path",
  required: true,
  description: "A run id, or a run name (the newest run with that name)",
  schema: { type: "string" },
};

export function openApiDocument(): OpenApiDocument {
  const document = baseDocument();
  // Each operation says the role it needs, from the one table the server checks.
  for (const rule of ROUTE_ROLES) {
    const path = rule.route.replace(/:(\w+)/g, "{$1}");
    const operation = document.paths[path]?.[rule.method.toLowerCase() as Method];
    if (operation) operation["x-slipway-role"] = rule.role;
  }
  return document;
}

function baseDocument(): OpenApiDocument {
  return {
    openapi: "3.1.0",
    info: {
      title: "Slipway",
      version: "1",
      description:
        "Runs of build and deploy pipelines, hosted durably by `slipway serve`. Every route but /healthz needs `Authorization: Bearer <token>`; each operation's `x-slipway-role` is the token role it needs (read < operate < admin). Every mutating request is recorded in the audit log (`GET /audit`).",
    },
    servers: [{ url: "/api/v1" }],
    security: [{ bearer: [] }],
    paths: {
      "/runs": {
        post: {
          operationId: "submitRun",
          summary: "Submit a run of a pipeline file, or of a pipeline registered with the server",
          parameters: [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              description:
                "Makes the submission safe to retry: the same key returns the run the first one started (as the body's `key`)",
              schema: { type: "string" },
            },
          ],
          requestBody: { required: true, content: json("SubmitRequest") },
          responses: {
            "201": { description: "The run was created", content: json("SubmitResponse") },
            ...errors(400, 401, 403, 404, 409, 413, 507),
          },
        },
        get: {
          operationId: "listRuns",
          summary: "List runs, newest first",
          parameters: [
            {
              name: "status",
              in: "query",
              required: false,
              description: "Only runs in these statuses (repeat it, or separate with commas)",
              schema: { type: "string" },
            },
            {
              name: "pipeline",
              in: "query",
              required: false,
              description: "Only runs of this pipeline",
              schema: { type: "string" },
            },
            {
              name: "name",
              in: "query",
              required: false,
              description: "Only runs with this run name",
              schema: { type: "string" },
            },
            {
              name: "key",
              in: "query",
              required: false,
              description: "Only the run its submission's idempotency key started",
              schema: { type: "string" },
            },
            {
              name: "q",
              in: "query",
              required: false,
              description: "Only runs whose id, run name or pipeline contains this text (any case)",
              schema: { type: "string" },
            },
            {
              name: "concurrency",
              in: "query",
              required: false,
              description: "Only runs with this concurrency key",
              schema: { type: "string" },
            },
            {
              name: "trigger",
              in: "query",
              required: false,
              description:
                "Only runs started so: an event kind (`push`, `pull_request`, `comment`, `schedule`) or `manual`",
              schema: { type: "string" },
            },
            {
              name: "limit",
              in: "query",
              required: false,
              description: "At most this many runs: the answer is then one page, `{ runs, next }`",
              schema: { type: "integer" },
            },
            {
              name: "cursor",
              in: "query",
              required: false,
              description: "A previous page's `next`: the page after it",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "Runs: every match as an array, or with `limit` one page `{ runs, next }`",
              content: {
                "application/json": {
                  schema: { oneOf: [{ type: "array", items: ref("RunSummary") }, ref("RunPage")] },
                },
              },
            },
            ...errors(400, 401),
          },
        },
      },
      "/runs/{id}": {
        get: {
          operationId: "showRun",
          summary:
            "One run: its status, why it failed, each step's state and phases (`timings`), the critical path, and its plan",
          parameters: [runId],
          responses: { "200": { description: "The run", content: json("RunDetail") }, ...errors(401, 404) },
        },
      },
      "/runs/{id}/logs": {
        get: {
          operationId: "runLogs",
          summary:
            "The run's job output, every attempt and undo, each file under a `==> step (attempt N) <==` header",
          parameters: [
            runId,
            {
              name: "job",
              in: "query",
              required: false,
              description: "A job name (all its legs) or a step name",
              schema: { type: "string" },
            },
            {
              name: "follow",
              in: "query",
              required: false,
              description: "`1`: stream new lines until the run ends",
              schema: { type: "string", enum: ["1", "true", "0", "false"] },
            },
            {
              name: "since",
              in: "query",
              required: false,
              description: "Only lines written at or after this time (epoch ms)",
              schema: { type: "integer" },
            },
            {
              name: "until",
              in: "query",
              required: false,
              description: "Only lines written before this time (epoch ms)",
              schema: { type: "integer" },
            },
            {
              name: "tail",
              in: "query",
              required: false,
              description:
                "Only the last this many bytes of each log file, from its first whole line (its header then ends `from byte N`)",
              schema: { type: "integer" },
            },
          ],
          responses: {
            "200": { description: "Log text", content: { "text/plain": { schema: { type: "string" } } } },
            ...errors(401, 404),
          },
        },
      },
      "/runs/{id}/events": {
        get: {
          operationId: "runEvents",
          summary:
            "The run's events as Server-Sent Events: persisted history, then live events (progress included) until the run ends",
          description:
            "Each message has `event:` the event type (`action:started`...), `data:` the event as JSON, and `id:` its seq (not for progress events, which are not persisted). Reconnect with `Last-Event-ID` to continue after that seq.",
          parameters: [
            runId,
            {
              name: "Last-Event-ID",
              in: "header",
              required: false,
              description: "Send only events after this seq",
              schema: { type: "integer", minimum: 0 },
            },
          ],
          responses: {
            "200": {
              description: "An event stream",
              content: { "text/event-stream": { schema: ref("Event") } },
            },
            ...errors(400, 401, 404),
          },
        },
      },
      "/events": {
        get: {
          operationId: "changes",
          summary:
            "Server-wide notices as Server-Sent Events: a run created or changing status, the queue changing (re-read what you show)",
          description:
            "Each message has `event:` `run`, `queue` or `reset`, `data:` the notice as JSON (small: ids, status, pipeline) and `id:` its cursor. Reconnect with `Last-Event-ID` to get the notices missed since; `reset` says some were lost (too slow a reader, a restarted server) or runs were pruned: re-read everything. A `: keep-alive` comment comes every 15 s.",
          parameters: [
            {
              name: "Last-Event-ID",
              in: "header",
              required: false,
              description: "Send only notices after this cursor (`<boot>.<n>`, from a message's `id:`)",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "A notice stream",
              content: { "text/event-stream": { schema: ref("Change") } },
            },
            ...errors(400, 401),
          },
        },
      },
      "/runs/{id}/cancel": {
        post: {
          operationId: "cancelRun",
          summary: "Cancel a run: nothing new starts, running jobs stop, completed ones are undone",
          parameters: [runId],
          requestBody: { required: false, content: json("CancelRequest") },
          responses: {
            "200": { description: "Cancel requested", content: json("ActionResponse") },
            ...errors(400, 401, 403, 404, 409, 413, 507),
          },
        },
      },
      "/runs/{id}/signals/{name}": {
        post: {
          operationId: "signalRun",
          summary:
            "Send a signal to the run (kept until a `wait` job waits for it); the body is its JSON payload",
          parameters: [
            runId,
            {
              name: "name",
              in: "path",
              required: true,
              description: "The signal's name",
              schema: { type: "string" },
            },
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              description:
                "Makes the signal safe to retry: a repeat with the same key (and the same run, name and payload) is answered as the first was and delivers nothing; the same key with another request is a 409 idempotency_conflict",
              schema: { type: "string" },
            },
          ],
          requestBody: {
            required: false,
            content: {
              "application/json": {
                schema: { description: "Any JSON value; an object's fields become the wait job's outputs" },
              },
            },
          },
          responses: {
            "200": { description: "The signal was persisted", content: json("SignalResponse") },
            ...errors(400, 401, 403, 404, 409, 413, 507),
          },
        },
      },
      "/runs/{id}/retry": {
        post: {
          operationId: "retryRun",
          summary:
            "Continue a held run (failed, on_failure: hold) from its failed jobs, reusing what completed",
          parameters: [runId],
          responses: {
            "200": { description: "Retrying", content: json("ActionResponse") },
            ...errors(401, 403, 404, 409, 507),
          },
        },
      },
      "/runs/{id}/resume": {
        post: {
          operationId: "resumeRun",
          summary:
            "Continue a run that needs attention (failed undos run again), or an incomplete run no live process runs",
          parameters: [runId],
          responses: {
            "200": { description: "Resumed", content: json("ActionResponse") },
            ...errors(401, 403, 404, 409, 507),
          },
        },
      },
      "/prune": {
        post: {
          operationId: "pruneRuns",
          summary:
            "Remove ended runs (completed, compensated, cancelled) that ended before a time, with their logs",
          requestBody: { required: true, content: json("PruneRequest") },
          responses: {
            "200": { description: "The runs removed", content: json("PruneResponse") },
            ...errors(400, 401, 403, 507),
          },
        },
      },
      "/audit": {
        get: {
          operationId: "auditLog",
          summary:
            "The audit log: every mutating request (who: the token's name; what: method, route, run; when; the answer's status), newest first",
          parameters: [
            {
              name: "limit",
              in: "query",
              required: false,
              description: "At most this many entries (default 100)",
              schema: { type: "integer", minimum: 1, maximum: 10000 },
            },
            {
              name: "before",
              in: "query",
              required: false,
              description: "Only entries before this seq: a previous page's `next`",
              schema: { type: "integer", minimum: 1 },
            },
          ],
          responses: {
            "200": { description: "One page of the audit log", content: json("AuditPage") },
            ...errors(400, 401, 403),
          },
        },
      },
      "/config": {
        get: {
          operationId: "serverConfig",
          summary:
            "The server's configuration as it runs: pools, locks, weights, its tokens' names and roles (never a hash), retention, what jobs inherit",
          responses: {
            "200": { description: "The configuration", content: json("Config") },
            ...errors(401, 403),
          },
        },
      },
      "/queue": {
        get: {
          operationId: "queue",
          summary: "Every job of an unfinished run that is not running, and why",
          responses: { "200": { description: "Waiting jobs", content: json("Queue") }, ...errors(401) },
        },
      },
      "/triggers": {
        get: {
          operationId: "triggers",
          summary:
            "Trigger sources with their last poll, recent events with each pipeline's verdict, schedules",
          parameters: [
            {
              name: "limit",
              in: "query",
              required: false,
              description: "At most this many recent events (default 50)",
              schema: { type: "integer", minimum: 1, maximum: 10000 },
            },
          ],
          responses: { "200": { description: "Triggers", content: json("Triggers") }, ...errors(400, 401) },
        },
      },
      "/resources": {
        get: {
          operationId: "resources",
          summary:
            "Resource pools and locks with their holders, the jobs running now with what they declared, and per pipeline and job its declared resources against its measured peak memory",
          responses: { "200": { description: "Resources", content: json("Resources") }, ...errors(401) },
        },
      },
      "/workers": {
        get: {
          operationId: "workers",
          summary:
            "The workers sharing the server's database (a cluster's servers, foreground runs): host, pid, heartbeat, whether each looks alive, the runs it owns and their running jobs, its capacity (maxRuns) and room left (free)",
          responses: { "200": { description: "Workers", content: json("Workers") }, ...errors(401) },
        },
      },
      "/executors": {
        get: {
          operationId: "executors",
          deprecated: true,
          summary: "`/workers` under its former name: the same list as `{ executors, leaseMs }`",
          responses: { "200": { description: "Executors", content: json("Executors") }, ...errors(401) },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document",
          responses: {
            "200": {
              description: "OpenAPI 3.1",
              content: { "application/json": { schema: { type: "object" } } },
            },
            ...errors(401),
          },
        },
      },
      "/metrics": {
        get: {
          operationId: "metrics",
          summary:
            "Prometheus metrics in the text exposition format. Served at the root: `/metrics`, not under `/api/v1`. Needs a token of any role, or none with `metrics: { public: true }` in the server config; absent (404) when the server has no metrics",
          "x-slipway-role": "read",
          responses: {
            "200": {
              description: "The text exposition (`text/plain; version=0.0.4`)",
              content: { "text/plain": { schema: { type: "string" } } },
            },
            ...errors(401),
            "404": { description: "This server keeps no metrics", content: json("Error") },
          },
        },
      },
      "/healthz": {
        get: {
          operationId: "health",
          summary:
            "Liveness, without a token: 200 while the process answers. On PostgreSQL, `storage` says whether the database is reachable (see docs/server.md, When PostgreSQL restarts). Served at the root: `/healthz`, not under `/api/v1`",
          security: [],
          responses: { "200": { description: "Up", content: json("Health") } },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        SubmitRequest: schemaOf(api.submitRequest, "input"),
        SubmitResponse: schemaOf(api.submitResponse),
        CancelRequest: schemaOf(api.cancelRequest, "input"),
        RunSummary: schemaOf(api.runSummary),
        RunDetail: schemaOf(api.runDetail),
        Phase: schemaOf(api.phase),
        RunPage: schemaOf(api.runPage),
        PruneRequest: schemaOf(api.pruneRequest, "input"),
        PruneResponse: schemaOf(api.pruneResponse),
        Queue: schemaOf(api.queueResponse),
        Resources: schemaOf(api.resourcesResponse),
        Workers: schemaOf(api.workersResponse),
        Executors: schemaOf(
          z.object({ executors: z.array(api.workerInfo), leaseMs: api.workersResponse.shape.leaseMs }),
        ),
        Triggers: schemaOf(triggersResponse),
        SignalResponse: schemaOf(api.signalResponse),
        ActionResponse: schemaOf(api.actionResponse),
        AuditPage: schemaOf(api.auditPage),
        Config: schemaOf(api.configResponse),
        Error: schemaOf(api.errorResponse),
        Health: schemaOf(api.healthResponse),
        Change: {
          type: "object",
          description: "A notice of `GET /events` (see docs/server.md, Changes (SSE))",
          properties: {
            kind: { type: "string", enum: ["run", "queue", "reset"] },
            run: { type: "string", description: "The run's id (not for `reset`)" },
            pipeline: { type: "string" },
            status: { type: "string", description: "`run`: the run's new status" },
            job: { type: ["string", "null"], description: "`queue`: the job that moved" },
          },
          required: ["kind"],
        },
        Event: {
          type: "object",
          description: "An engine event (see docs/sagas.md#events)",
          properties: {
            type: { type: "string" },
            runId: { type: "string" },
            executionId: {
              type: "string",
              deprecated: true,
              description: "The same as runId (its name in 0.1)",
            },
            saga: { type: "string" },
            runName: { type: ["string", "null"] },
            seq: { type: "integer" },
            action: { type: ["string", "null"] },
            at: { type: "number" },
            data: { type: ["object", "null"] },
          },
          required: ["type", "runId", "saga", "runName", "action", "at", "data"],
        },
      },
    },
  };
}
