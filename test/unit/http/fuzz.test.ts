/**
 * Property-based: generated requests to every route of the OpenAPI document, against the in-process
 * app over a real runs service, never get a 5xx; every refusal has the API's error shape. Bodies are
 * random JSON, malformed text, JSON nested up to 100,000 deep, oversized bodies and route-shaped
 * bodies (pipelines over the limits included); path, query and header values are random too.
 * 80 requests per route (1,040 in all), a few seconds on a busy 2-core machine.
 */
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_PREFIX, createApp } from "../../../src/http/app.js";
import { openApiDocument } from "../../../src/http/openapi.js";
import { LocalRuns } from "../../../src/runs/local.js";
import { tempDir } from "../../helpers.js";

const RUNS_PER_ROUTE = 80;
const TOKEN = "t";

let runs: LocalRuns;
let app: ReturnType<typeof createApp>;
let dir: string;
const ids: string[] = [];

/** A run that waits for signal `go` (no job process is started by any request here). */
const GATE = "name: gate\ninputs:\n  tag: { default: v1 }\njobs:\n  approve:\n    wait: { signal: go }\n";

beforeAll(async () => {
  dir = tempDir();
  runs = await LocalRuns.open({ db: join(dir, "slipway.db"), adopt: "all", pollIntervalMs: 50 });
  app = createApp({ runs, logger: runs.runtime.logger, token: TOKEN });
  for (let i = 0; i < 2; i++) ids.push((await runs.submit({ file: join(dir, "gate.yml"), source: GATE })).id);
});

afterAll(async () => {
  await runs?.close();
});

const axes = Array.from({ length: 8 }, (_, i) => `      a${i}: [1, 2, 3, 4, 5, 6, 7, 8]`).join("\n");
const sources = [
  GATE,
  `jobs:\n  a:\n    matrix:\n${axes}\n    wait: { signal: go }\n`,
  `jobs:\n  a:\n    if: \${{ ${"!".repeat(20_000)}true }}\n    wait: { signal: go }\n`,
  `jobs:\n  a:\n    if: \${{ ${"(".repeat(5_000)}true${")".repeat(5_000)} }}\n    wait: { signal: go }\n`,
  `jobs: ${"[".repeat(5_000)}${"]".repeat(5_000)}\n`,
  "jobs: {",
  "",
];

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("", " ", "go", "0", "-1", "1e999", "true", "..", "%"),
);
const headerValue = fc.string({ unit: "grapheme-ascii", maxLength: 20 });
const deepText = fc
  .tuple(fc.constantFrom(64, 65, 100_000), fc.constantFrom("[", '{"a":'), fc.nat({ max: 3 }))
  .map(([depth, open, unclosed]) => {
    const close = open === "[" ? "]" : "}";
    return open.repeat(depth) + (open === "[" ? "" : "1") + close.repeat(unclosed === 0 ? 0 : depth);
  });

const submitBody = fc.record(
  {
    file: fc.oneof(
      fc.record({ name: fc.constant("/tmp/slipway-fuzz/p.yml"), source: fc.constantFrom(...sources) }),
      fc.anything({ maxDepth: 2 }),
    ),
    pipeline: fc.oneof(fc.constant("gate"), text),
    inputs: fc.oneof(
      fc.dictionary(fc.constantFrom("tag", "nope"), fc.oneof(text, fc.integer(), fc.boolean())),
      fc.constant({ tag: "x".repeat(70_000) }),
      fc.anything({ maxDepth: 2 }),
    ),
    tiers: fc.oneof(fc.array(text, { maxLength: 2 }), fc.anything({ maxDepth: 1 })),
    name: text,
    key: fc.oneof(text, fc.constant("k".repeat(300))),
  },
  { requiredKeys: [] },
);
const shaped: Record<string, fc.Arbitrary<unknown>> = {
  "/runs": submitBody,
  "/runs/{id}/cancel": fc.record({ reason: fc.oneof(text, fc.integer()) }, { requiredKeys: [] }),
  "/runs/{id}/signals/{name}": fc.anything({ maxDepth: 3 }),
  "/prune": fc.record(
    { endedBefore: fc.oneof(fc.integer({ min: 0, max: 1 }), fc.double(), text) },
    { requiredKeys: [] },
  ),
};

const body = (path: string) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: (shaped[path] ?? fc.anything({ maxDepth: 2 })).map((value) => JSON.stringify(value)),
    },
    fc.json({ maxDepth: 3 }),
    fc.string({ maxLength: 20 }),
    { weight: 3, arbitrary: deepText },
    fc.constant(""),
    fc.constant(`"${"x".repeat(1_100_000)}"`),
  );

interface Sample {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Requests for one route: its path parameters, query, headers and body, each generated. */
function requests(path: string, method: string, operation: Record<string, unknown>): fc.Arbitrary<Sample> {
  const parameters = (operation.parameters ?? []) as { name: string; in: string }[];
  const segment = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...ids, "go") },
    text.map((t) => encodeURIComponent(t) || "x"),
  );
  const query = fc.tuple(
    ...parameters
      .filter((p) => p.in === "query")
      .map((p) =>
        fc
          .option(fc.oneof(text, fc.constantFrom("1", "true", "running,waiting", "10001")), {
            nil: undefined,
          })
          .map((v) => [p.name, v] as const),
      ),
  );
  const headers = fc.tuple(
    ...parameters
      .filter((p) => p.in === "header")
      .map((p) => fc.option(headerValue, { nil: undefined }).map((v) => [p.name, v] as const)),
  );
  return fc
    .record({
      id: segment,
      name: segment,
      query,
      headers,
      body: method === "post" ? fc.option(body(path), { freq: 10, nil: undefined }) : fc.constant(undefined),
      auth: fc.oneof(
        { weight: 10, arbitrary: fc.constant(`Bearer ${TOKEN}`) },
        fc.constantFrom("", "Bearer x", "Basic y"),
      ),
    })
    .map((g) => {
      const params = new URLSearchParams();
      for (const [key, value] of g.query) if (value !== undefined) params.append(key, value);
      const route = path === "/healthz" ? path : `${API_PREFIX}${path}`;
      const url = `${route.replace("{id}", g.id).replace("{name}", g.name)}${params.size ? `?${params}` : ""}`;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (g.auth) headers.authorization = g.auth;
      for (const [key, value] of g.headers) if (value !== undefined) headers[key.toLowerCase()] = value;
      const sample: Sample = { method: method.toUpperCase(), url, headers };
      if (g.body !== undefined) sample.body = g.body;
      // A counterexample shows the start of its body: some are a megabyte long.
      return Object.assign(sample, {
        [fc.toStringMethod]: () =>
          `${sample.method} ${url} ${JSON.stringify(headers)} body (${g.body?.length ?? 0} chars): ${g.body?.slice(0, 200) ?? ""}`,
      });
    });
}

/** Sends one request; a streamed answer (logs, events) is closed unread, since a waiting run's stream never ends. */
async function send(sample: Sample): Promise<{ status: number; body: unknown }> {
  const response = await app.request(sample.url, {
    method: sample.method,
    headers: sample.headers,
    ...(sample.body !== undefined && { body: sample.body }),
  });
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("application/json")) {
    await response.body?.cancel();
    return { status: response.status, body: undefined };
  }
  return { status: response.status, body: await response.json() };
}

describe("every route of the OpenAPI document, generated requests", () => {
  const routes = Object.entries(openApiDocument().paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => ({ path, method, operation })),
  );

  it("documents the routes this test sends to", () => {
    expect(routes.length).toBeGreaterThanOrEqual(13);
  });

  for (const { path, method, operation } of routes) {
    it(`${method.toUpperCase()} ${path}: never a 5xx, refusals in the error shape`, async () => {
      await fc.assert(
        fc.asyncProperty(
          requests(path, method, operation as unknown as Record<string, unknown>),
          async (sample) => {
            const { status, body } = await send(sample);
            expect(status, `${sample.method} ${sample.url}`).toBeLessThan(500);
            if (status >= 400) {
              expect(body, `${sample.method} ${sample.url}`).toMatchObject({
                error: { code: expect.any(String), message: expect.any(String) },
              });
            }
          },
        ),
        { numRuns: RUNS_PER_ROUTE },
      );
    });
  }
});
