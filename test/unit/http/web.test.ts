/**
 * The dashboard as the server serves it: its files (the page for client routes, hashed assets cached
 * for good), its sign-in cookie, the API accepting that cookie, and the rule that a request changing
 * something with the cookie comes from the dashboard's own origin. And the built bundle's size budget.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createApp } from "../../../src/http/app.js";
import { Tokens } from "../../../src/http/auth.js";
import { createLogger } from "../../../src/logging.js";
import type { RunService } from "../../../src/runs/service.js";
import { tempDir } from "../../helpers.js";

const HOST = "dash.example:7420";

function setup(options: { built?: boolean } = {}) {
  const dir = tempDir();
  if (options.built !== false) {
    mkdirSync(join(dir, "assets"));
    writeFileSync(join(dir, "index.html"), '<!doctype html><script src="/assets/main-AB12.js"></script>');
    writeFileSync(join(dir, "assets", "main-AB12.js"), "console.log(1)");
  }
  const cancelled: string[] = [];
  const runs = {
    queue: async () => [],
    cancel: async (ref: string) => {
      cancelled.push(ref);
      return { id: ref, status: "cancelled", message: "ok", seq: 1 };
    },
  } as unknown as RunService;
  const app = createApp({
    runs,
    logger: createLogger({ level: "silent" }),
    token: "admin-token",
    tokens: [Tokens.entry("viewer", "read", "read-token")],
    web: dir,
  });
  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: unknown) =>
    app.request(`http://${HOST}${path}`, {
      method,
      headers: { host: HOST, ...(body !== undefined && { "content-type": "application/json" }), ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  return { call, cancelled };
}

const cookie = (token: string) => ({ cookie: `slipway_session=${token}` });

describe("the dashboard's files", () => {
  it("serves the page for every client route, and the API's answers under its prefix", async () => {
    const { call } = setup();
    for (const path of ["/", "/runs/r1", "/queue"]) {
      const response = await call("GET", path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/html");
      expect(response.headers.get("cache-control")).toBe("no-cache");
      expect(response.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(await response.text()).toContain("main-AB12.js");
    }
    const api = await call("GET", "/api/v1/runs");
    expect(api.status).toBe(401);
    expect(await api.json()).toMatchObject({ error: { code: "unauthorized" } });
    expect((await call("GET", "/healthz")).status).toBe(200);
  });

  it("caches hashed assets for good, and a missing asset is a 404, not the page", async () => {
    const { call } = setup();
    const asset = await call("GET", "/assets/main-AB12.js");
    expect(asset.status).toBe(200);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect((await call("GET", "/assets/main-XXXX.js")).status).toBe(404);
  });

  it("says how to build it when it is not built", async () => {
    const { call } = setup({ built: false });
    const response = await call("GET", "/");
    expect(response.status).toBe(404);
    expect(await response.text()).toContain("npm run build");
  });
});

describe("signing in", () => {
  it("refuses a wrong token without a cookie, and sets an HttpOnly SameSite=Strict cookie for a known one", async () => {
    const { call } = setup();
    const same = { "sec-fetch-site": "same-origin" };
    const wrong = await call("POST", "/session", same, { token: "nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();

    const right = await call("POST", "/session", same, { token: "read-token" });
    expect(right.status).toBe(200);
    expect(await right.json()).toEqual({ name: "viewer", role: "read" });
    const set = right.headers.get("set-cookie")!;
    expect(set).toMatch(/^slipway_session=read-token;/);
    expect(set).toContain("HttpOnly");
    expect(set).toContain("SameSite=Strict");
    expect(set).not.toContain("Secure");
    // Behind a TLS proxy, the cookie is sent over TLS only.
    const tls = await call(
      "POST",
      "/session",
      { ...same, "x-forwarded-proto": "https" },
      { token: "read-token" },
    );
    expect(tls.headers.get("set-cookie")).toContain("Secure");

    expect(await (await call("GET", "/session", cookie("read-token"))).json()).toEqual({
      name: "viewer",
      role: "read",
    });
    expect((await call("GET", "/session")).status).toBe(401);
    const out = await call("DELETE", "/session", same);
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toMatch(/^slipway_session=;.*Max-Age=0/);
  });

  it("refuses signing in from another origin", async () => {
    const { call } = setup();
    const response = await call(
      "POST",
      "/session",
      { "sec-fetch-site": "same-site" },
      { token: "admin-token" },
    );
    expect(response.status).toBe(403);
    expect(response.headers.get("set-cookie")).toBeNull();
  });
});

describe("the API with the sign-in cookie", () => {
  it("reads with the cookie as with the bearer header, within the token's role", async () => {
    const { call, cancelled } = setup();
    expect((await call("GET", "/api/v1/queue", cookie("read-token"))).status).toBe(200);
    expect((await call("GET", "/api/v1/queue", cookie("wrong"))).status).toBe(401);
    const refused = await call("POST", "/api/v1/runs/r1/cancel", {
      ...cookie("read-token"),
      "sec-fetch-site": "same-origin",
    });
    expect(refused.status).toBe(403);
    expect(cancelled).toEqual([]);
  });

  it("changes something with the cookie only from the dashboard's own origin", async () => {
    const { call, cancelled } = setup();
    const admin = cookie("admin-token");
    const elsewhere: Record<string, string>[] = [
      { "sec-fetch-site": "same-site" },
      { "sec-fetch-site": "cross-site" },
      { origin: "http://dash.example:9999" },
      {},
    ];
    for (const headers of elsewhere) {
      const response = await call("POST", "/api/v1/runs/r1/cancel", { ...admin, ...headers });
      expect(response.status, JSON.stringify(headers)).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: "cross_site" } });
    }
    expect(cancelled).toEqual([]);
    // Its own page: a browser says so with Sec-Fetch-Site, an older one with its Origin.
    expect(
      (await call("POST", "/api/v1/runs/r1/cancel", { ...admin, "sec-fetch-site": "same-origin" })).status,
    ).toBe(200);
    expect(
      (await call("POST", "/api/v1/runs/r1/cancel", { ...admin, origin: `http://${HOST}` })).status,
    ).toBe(200);
    // The bearer header is not sent by browsers on their own: no origin needed (the CLI, scripts).
    expect(
      (await call("POST", "/api/v1/runs/r1/cancel", { authorization: "Bearer admin-token" })).status,
    ).toBe(200);
    expect(cancelled).toEqual(["r1", "r1", "r1"]);
  });
});

const BUILT = join(import.meta.dirname, "..", "..", "..", "dist", "web");

describe.skipIf(!existsSync(join(BUILT, "index.html")))("the built dashboard (npm run build)", () => {
  it("keeps its first page within 200 KB gzipped, with no file from elsewhere", () => {
    const html = readFileSync(join(BUILT, "index.html"), "utf8");
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    // No CDN: every file the page loads is the server's own.
    for (const asset of assets) expect(asset).toMatch(/^\/assets\/main-[A-Z0-9]+\.(js|css)$/);
    const files = [join(BUILT, "index.html"), ...assets.map((a) => join(BUILT, a))];
    const gzipped = files.reduce((sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length, 0);
    console.log(`dashboard first page: ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThanOrEqual(200 * 1024);
    expect(readdirSync(join(BUILT, "assets")).length).toBeGreaterThanOrEqual(2);
  });
});
