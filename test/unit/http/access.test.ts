/** Who may do what: tokens and roles per route, the audit log of mutating requests, and signals' Idempotency-Key. */

import type { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type ApiEnv, createApp } from "../../../src/http/app.js";
import { allows, matchRoute, ROUTE_ROLES, Tokens } from "../../../src/http/auth.js";
import type { Json } from "../../../src/json.js";
import { createLogger } from "../../../src/logging.js";
import { tokenHash } from "../../../src/runs/config.js";
import type { AuditPage, ErrorResponse, SignalResponse } from "../../../src/runs/schemas.js";
import type { AuditLog, RunService } from "../../../src/runs/service.js";
import { MemoryStorage } from "../../../src/storage/memory.js";

const TOKENS = [
  { name: "viewer", role: "read" as const, token: "r-token" },
  { name: "ci", role: "operate" as const, token: "o-token" },
  { name: "alice", role: "admin" as const, token: "a-token" },
];

/** A runs service that answers every call and counts the signals it delivers. */
function fakeRuns() {
  const delivered: { ref: string; name: string; payload: Json }[] = [];
  const action = async (ref: string) => ({ id: ref, status: "running" as const, message: "ok", seq: 0 });
  const runs = {
    detached: true,
    submit: async () => ({ id: "r-new", name: null, pipeline: "p", jobs: 1 }),
    list: async () => [],
    page: async () => ({ runs: [] }),
    show: async () => {
      throw new Error("not in this test");
    },
    logs: async () => (async function* () {})(),
    events: async () => (async function* () {})(),
    changes: async () => (async function* () {})(),
    cancel: action,
    retry: action,
    resume: action,
    signal: async (ref: string, name: string, payload: Json = {}) => {
      // Slow enough that a concurrent repeat arrives while it is in flight.
      await new Promise((done) => setImmediate(done));
      delivered.push({ ref, name, payload });
      return { id: ref, signal: name, seq: delivered.length };
    },
    prune: async () => ({ removed: [] }),
    queue: async () => [],
    resources: async () => ({ pools: [], running: [] }),
    close: async () => {},
  } as unknown as RunService;
  return { runs, delivered };
}

async function setup() {
  const storage = new MemoryStorage();
  await storage.init();
  const audit: AuditLog = {
    record: async (e) => (await storage.addAudit([e]))[0]!,
    list: (q) => storage.listAudit(q),
  };
  const { runs, delivered } = fakeRuns();
  const app = createApp({
    runs,
    logger: createLogger({ level: "silent" }),
    token: "legacy",
    tokens: TOKENS.map((t) => Tokens.entry(t.name, t.role, t.token)),
    audit,
    config: () => ({
      resources: { memoryBytes: 1, cpu: 1, diskBytes: 1 },
      locks: {},
      workDir: "/w",
      weights: {},
      retention: null,
      jobEnv: ["PATH"],
    }),
  });
  return { app, delivered, storage };
}

function call(app: Hono<ApiEnv>, method: string, path: string, token?: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  if (init.body !== undefined) headers.set("content-type", "application/json");
  return app.request(`/api/v1${path}`, { ...init, method, headers });
}

/** One request per route, with a body it accepts. */
const EXAMPLES: Record<string, [string, string, unknown?]> = {
  "GET /runs": ["GET", "/runs"],
  "GET /runs/:id": ["GET", "/runs/r1"],
  "GET /runs/:id/logs": ["GET", "/runs/r1/logs"],
  "GET /runs/:id/events": ["GET", "/runs/r1/events"],
  "GET /events": ["GET", "/events"],
  "GET /queue": ["GET", "/queue"],
  "GET /resources": ["GET", "/resources"],
  "GET /workers": ["GET", "/workers"],
  "GET /executors": ["GET", "/executors"],
  "GET /triggers": ["GET", "/triggers"],
  "GET /openapi.json": ["GET", "/openapi.json"],
  "POST /runs": ["POST", "/runs", { pipeline: "p" }],
  "POST /runs/:id/cancel": ["POST", "/runs/r1/cancel", {}],
  "POST /runs/:id/signals/:name": ["POST", "/runs/r1/signals/go", { ok: true }],
  "POST /runs/:id/retry": ["POST", "/runs/r1/retry"],
  "POST /runs/:id/resume": ["POST", "/runs/r1/resume"],
  "POST /prune": ["POST", "/prune", { endedBefore: 0 }],
  "GET /audit": ["GET", "/audit"],
  "GET /config": ["GET", "/config"],
};

describe("roles", () => {
  it("each role may do what the ones below it may", () => {
    expect(allows("admin", "operate")).toBe(true);
    expect(allows("operate", "read")).toBe(true);
    expect(allows("read", "operate")).toBe(false);
    expect(allows("operate", "admin")).toBe(false);
  });

  it("the table gives every GET but the audit log to read, what steers runs to operate, prune and audit to admin", () => {
    const table = Object.fromEntries(ROUTE_ROLES.map((r) => [`${r.method} ${r.route}`, r.role]));
    expect(table).toEqual({
      "GET /runs": "read",
      "GET /runs/:id": "read",
      "GET /runs/:id/logs": "read",
      "GET /runs/:id/events": "read",
      "GET /events": "read",
      "GET /queue": "read",
      "GET /resources": "read",
      "GET /workers": "read",
      "GET /executors": "read",
      "GET /triggers": "read",
      "GET /openapi.json": "read",
      "POST /runs": "operate",
      "POST /runs/:id/cancel": "operate",
      "POST /runs/:id/signals/:name": "operate",
      "POST /runs/:id/retry": "operate",
      "POST /runs/:id/resume": "operate",
      "POST /prune": "admin",
      "GET /audit": "admin",
      "GET /config": "admin",
    });
    expect(Object.keys(EXAMPLES).sort()).toEqual(Object.keys(table).sort());
  });

  it("matches paths to routes, with their parameters decoded", () => {
    expect(matchRoute("POST", "/runs/a%20b/signals/go")).toMatchObject({
      rule: { route: "/runs/:id/signals/:name" },
      params: { id: "a b", name: "go" },
    });
    expect(matchRoute("HEAD", "/runs/r1")?.rule.route).toBe("/runs/:id");
    expect(matchRoute("POST", "/runs/r1")).toBeUndefined();
    expect(matchRoute("GET", "/runs//logs")).toBeUndefined();
  });

  it("knows a token by its hash, and only a token it was given", () => {
    const tokens = new Tokens([
      { name: "ci", role: "operate", sha256: Buffer.from(tokenHash("o").slice(7), "hex") },
      Tokens.entry("alice", "admin", "a"),
    ]);
    expect(tokens.identify("o")).toEqual({ name: "ci", role: "operate" });
    expect(tokens.identify("a")).toEqual({ name: "alice", role: "admin" });
    expect(tokens.identify("oo")).toBeUndefined();
    expect(tokens.identify("")).toBeUndefined();
  });
});

describe("the API by role", () => {
  it("answers 401 without a known token and 403 for a role too low, in the error shape", async () => {
    const { app } = await setup();
    for (const rule of ROUTE_ROLES) {
      const [method, path, body] = EXAMPLES[`${rule.method} ${rule.route}`]!;
      const init = body === undefined ? {} : { body: JSON.stringify(body) };
      for (const token of [undefined, "wrong"]) {
        const response = await call(app, method, path, token, init);
        expect(response.status, `${method} ${path} with ${token}`).toBe(401);
        expect(((await response.json()) as ErrorResponse).error.code).toBe("unauthorized");
      }
      for (const { role, token, name } of [...TOKENS, { name: "default", role: "admin", token: "legacy" }]) {
        const response = await call(app, method, path, token, init);
        if (allows(role as "read", rule.role)) {
          expect(response.status, `${method} ${path} as ${role}`).not.toBe(403);
          expect(response.status, `${method} ${path} as ${role}`).not.toBe(401);
        } else {
          expect(response.status, `${method} ${path} as ${role}`).toBe(403);
          const { error } = (await response.json()) as ErrorResponse;
          expect(error.code).toBe("forbidden");
          expect(error.message).toBe(
            `token "${name}" has role ${role}; ${rule.method} ${rule.route} needs role ${rule.role}`,
          );
        }
        if (!response.bodyUsed) await response.body?.cancel();
      }
    }
  });

  it("records each mutating request (refused ones too) for admin to read, newest first, by page", async () => {
    const { app } = await setup();
    expect((await call(app, "POST", "/runs/r1/cancel", "o-token", { body: "{}" })).status).toBe(200);
    expect((await call(app, "POST", "/prune", "o-token", { body: '{"endedBefore":0}' })).status).toBe(403);
    expect((await call(app, "POST", "/runs", "a-token", { body: '{"pipeline":"p"}' })).status).toBe(201);
    expect((await call(app, "POST", "/runs/r2/retry", "legacy")).status).toBe(200);
    expect((await call(app, "POST", "/runs/r2/retry", "nobody")).status).toBe(401);
    expect((await call(app, "GET", "/runs", "a-token")).status).toBe(200);

    expect((await call(app, "GET", "/audit", "o-token")).status).toBe(403);
    const page = (await (await call(app, "GET", "/audit?limit=3", "a-token")).json()) as AuditPage;
    expect(page.entries.map((e) => [e.actor, e.method, e.route, e.run, e.status])).toEqual([
      ["default", "POST", "/runs/:id/retry", "r2", 200],
      ["alice", "POST", "/runs", "r-new", 201],
      ["ci", "POST", "/prune", null, 403],
    ]);
    expect(page.next).toBe(page.entries[2]!.seq);
    const rest = (await (
      await call(app, "GET", `/audit?before=${page.next}`, "a-token")
    ).json()) as AuditPage;
    expect(rest.entries.map((e) => [e.actor, e.path, e.status])).toEqual([["ci", "/runs/r1/cancel", 200]]);
    expect(rest.next).toBeUndefined();
    expect(rest.entries[0]!.at).toBeGreaterThan(0);
  });
});

describe("Idempotency-Key on signals", () => {
  const signal = (app: Hono<ApiEnv>, key: string, payload: unknown, run = "r1") =>
    call(app, "POST", `/runs/${run}/signals/approve`, "o-token", {
      body: JSON.stringify(payload),
      headers: { "idempotency-key": key },
    });

  it("delivers once and answers a repeat, concurrent or later, as the first", async () => {
    const { app, delivered } = await setup();
    const answers = await Promise.all([signal(app, "k1", { by: "bob" }), signal(app, "k1", { by: "bob" })]);
    const later = await signal(app, "k1", { by: "bob" });
    const bodies = await Promise.all([...answers, later].map(async (r) => [r.status, await r.json()]));
    expect(bodies).toEqual([
      [200, { id: "r1", signal: "approve", seq: 1 }],
      [200, { id: "r1", signal: "approve", seq: 1 }],
      [200, { id: "r1", signal: "approve", seq: 1 }],
    ]);
    expect(delivered).toEqual([{ ref: "r1", name: "approve", payload: { by: "bob" } }]);

    // Another key delivers again; without a key every request delivers.
    expect(((await (await signal(app, "k2", { by: "bob" })).json()) as SignalResponse).seq).toBe(2);
    await call(app, "POST", "/runs/r1/signals/approve", "o-token", { body: "{}" });
    await call(app, "POST", "/runs/r1/signals/approve", "o-token", { body: "{}" });
    expect(delivered).toHaveLength(4);
  });

  it("refuses the key with another payload or run (409 idempotency_conflict), delivering nothing", async () => {
    const { app, delivered } = await setup();
    expect((await signal(app, "k", { by: "bob" })).status).toBe(200);
    for (const response of [
      await signal(app, "k", { by: "eve" }),
      await signal(app, "k", { by: "bob" }, "r2"),
    ]) {
      expect(response.status).toBe(409);
      expect(((await response.json()) as ErrorResponse).error.code).toBe("idempotency_conflict");
    }
    expect(delivered).toHaveLength(1);
  });
});
