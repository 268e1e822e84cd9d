/** `GET /metrics` in the app: a token of any role, or none when public; the API keeps its own door. */
import { describe, expect, it } from "vitest";
import { createApp } from "../../../src/http/app.js";
import { Tokens } from "../../../src/http/auth.js";
import { createLogger } from "../../../src/logging.js";
import type { RunService } from "../../../src/runs/service.js";

const metrics = { contentType: "text/plain; version=0.0.4; charset=utf-8", scrape: async () => "up 1\n" };

function app(open: boolean) {
  return createApp({
    runs: {} as RunService,
    logger: createLogger({ level: "silent" }),
    token: "admin-token",
    tokens: [Tokens.entry("viewer", "read", "viewer-token")],
    metrics: { metrics, public: open },
  });
}

const get = (a: ReturnType<typeof app>, token?: string) =>
  a.request("/metrics", token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

describe("GET /metrics", () => {
  it("wants a known token of any role", async () => {
    const a = app(false);
    const missing = await get(a);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ error: { code: "unauthorized" } });
    expect((await get(a, "wrong")).status).toBe(401);
    for (const token of ["viewer-token", "admin-token"]) {
      const ok = await get(a, token);
      expect(ok.status).toBe(200);
      expect(ok.headers.get("content-type")).toBe(metrics.contentType);
      expect(await ok.text()).toBe("up 1\n");
    }
  });

  it("answers anyone when public, and the API still wants its token", async () => {
    const a = app(true);
    expect((await get(a)).status).toBe(200);
    expect((await a.request("/api/v1/queue")).status).toBe(401);
  });
});
