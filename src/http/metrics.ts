/**
 * `GET /metrics`: the server's Prometheus metrics, outside the versioned API (where scrapers look).
 * Its own guard, before the API's: a token of any role (`read` is the least), or none when the
 * server config says `metrics: { public: true }`.
 */
import type { Hono } from "hono";
import type { ApiEnv } from "./access.js";
import type { Tokens } from "./auth.js";
import { ApiError } from "./errors.js";

/** What the route serves: the text exposition, read at each scrape. */
export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export interface MetricsRoute {
  metrics: MetricsSource;
  /** Scraped without a token (`metrics: { public: true }` in the server config). */
  public?: boolean | undefined;
}

export function routeMetrics(app: Hono<ApiEnv>, route: MetricsRoute, tokens: Tokens): void {
  app.get("/metrics", async (c) => {
    if (!route.public) {
      const bearer = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "");
      if (!bearer)
        throw new ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
      // Every role may read; a known token is all it takes.
      if (!tokens.identify(bearer[1]!)) throw new ApiError(401, "unauthorized", "invalid token");
    }
    const text = await route.metrics.scrape();
    return c.body(text, 200, { "content-type": route.metrics.contentType });
  });
}
