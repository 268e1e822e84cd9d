/** The OpenAPI document describes every route the app serves, and nothing it does not. */
import { describe, expect, it } from "vitest";
import { API_PREFIX, createApp } from "../../../src/http/app.js";
import { ROUTE_ROLES } from "../../../src/http/auth.js";
import { openApiDocument } from "../../../src/http/openapi.js";
import { createLogger } from "../../../src/logging.js";
import type { RunService } from "../../../src/runs/service.js";

/** Served at the root, not under the API prefix. */
const ROOT = ["/healthz", "/metrics"];

describe("OpenAPI document", () => {
  it("documents exactly the routes the app serves", () => {
    // Routes are registered without touching the service: a stand-in is enough to list them.
    const app = createApp({
      runs: {} as RunService,
      logger: createLogger({ level: "silent" }),
      token: "t",
      metrics: { metrics: { contentType: "text/plain", scrape: async () => "" } },
    });
    const served = app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const document = openApiDocument();
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map(
        (method) => `${method.toUpperCase()} ${ROOT.includes(path) ? path : `${API_PREFIX}${path}`}`,
      ),
    );
    expect(new Set(served).size).toBe(served.length);
    expect([...served].sort()).toEqual([...documented].sort());
  });

  it("names the role each operation needs, from the table the server checks", () => {
    const document = openApiDocument();
    for (const [path, operations] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(operations)) {
        if (path === "/healthz") continue;
        // Outside the API and its table: any token's role may scrape (metrics.ts).
        if (path === "/metrics") {
          expect(operation["x-slipway-role"]).toBe("read");
          continue;
        }
        const rule = ROUTE_ROLES.find(
          (r) => r.method === method.toUpperCase() && r.route.replace(/:(\w+)/g, "{$1}") === path,
        );
        expect(rule, `${method} ${path} is in ROUTE_ROLES`).toBeDefined();
        expect(operation["x-slipway-role"]).toBe(rule!.role);
      }
  });

  it("refers only to schemas it defines", () => {
    const document = openApiDocument();
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map(
      (m) => m[1],
    );
    for (const name of refs) expect(document.components.schemas, name).toHaveProperty(name!);
    expect(JSON.stringify(document)).not.toContain('"$ref":"#"');
  });
});
