/**
 * Observability of a real `slipway serve`: `GET /metrics` behind a token (any role) unless the config
 * makes it public, counting the runs it hosted; and with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans
 * of a run sent to an OTLP receiver, the job's `TRACEPARENT` in its trace.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tokenHash } from "../../../src/runs/config.js";
import type { SubmitResponse } from "../../../src/runs/schemas.js";
import { type Receiver, startReceiver } from "../../otlp.js";
import { parseMetrics, sample, total } from "../../prometheus.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

const VIEWER = "viewer-token-1";

const OK = `name: ok
jobs:
  build:
    run: echo built
`;

const BAD = `name: bad
jobs:
  build:
    run: echo built
    undo: echo unbuilt
  test:
    needs: [build]
    run: exit 1
`;

const TRACE = `name: traced
jobs:
  build:
    run: echo "traceparent=$TRACEPARENT"
`;

function scrape(server: Server, token?: string): Promise<Response> {
  return fetch(`${server.url}/metrics`, {
    signal: AbortSignal.timeout(20_000),
    ...(token !== undefined && { headers: { authorization: `Bearer ${token}` } }),
  });
}

async function submit(server: Server, source: string): Promise<string> {
  return (await server.json<SubmitResponse>("POST", "/runs", { file: { name: "p.yml", source } }, 201)).id;
}

describe("GET /metrics on slipway serve", () => {
  it("needs a token of any role, and counts the runs the server hosted", async () => {
    const project = new Project();
    project.write("slipway.yml", `tokens:\n  viewer: { role: read, hash: "${tokenHash(VIEWER)}" }\n`);
    const server = await startServer(project, ["--config", "slipway.yml"]);
    expect((await scrape(server)).status).toBe(401);
    expect((await scrape(server, "not-a-token")).status).toBe(401);

    const ok = [await submit(server, OK), await submit(server, OK)];
    const bad = await submit(server, BAD);
    for (const id of ok) await server.status(id, "completed");
    await server.status(bad, "compensated");

    // Storage shows an end before its events are told (told once the disk flush answers): read the
    // counters fed by events once the three ends are counted.
    const m = await eventually(async () => {
      const response = await scrape(server, VIEWER);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const m = parseMetrics(await response.text());
      return total(m, "slipway_runs_finished_total") === 3 && m;
    }, "three run ends counted");
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "ok", status: "completed" })).toBe(2);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "bad", status: "compensated" })).toBe(1);
    expect(sample(m, "slipway_runs_started_total", { cicd_pipeline_name: "ok" })).toBe(2);
    expect(
      sample(m, "slipway_runs_finished_total", {
        cicd_pipeline_name: "bad",
        cicd_pipeline_result: "failure",
      }),
    ).toBe(1);
    expect(
      sample(m, "cicd_pipeline_run_duration_seconds_count", {
        cicd_pipeline_name: "ok",
        cicd_pipeline_result: "success",
      }),
    ).toBe(2);
    expect(
      sample(m, "slipway_job_duration_seconds_count", {
        cicd_pipeline_name: "bad",
        cicd_pipeline_task_name: "test",
        cicd_pipeline_task_run_result: "failure",
      }),
    ).toBe(1);
    expect(sample(m, "cicd_worker_count", { cicd_worker_state: "available" })).toBe(1);
  });

  it("answers without a token when the config makes it public", async () => {
    const project = new Project();
    project.write("slipway.yml", "metrics: { public: true }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const response = await scrape(server);
    expect(response.status).toBe(200);
    expect(sample(parseMetrics(await response.text()), "slipway_jobs_waiting")).toBe(0);
    // The API itself still wants its token.
    expect((await server.api("/runs", { token: null })).status).toBe(401);
  });
});

describe("traces from slipway serve", () => {
  let receiver: Receiver;
  beforeEach(async () => {
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await receiver.close();
  });

  it("sends a run's spans to the OTLP endpoint, and the job's TRACEPARENT is in the run's trace", async () => {
    const project = new Project();
    const server = await startServer(project, [], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const id = await submit(server, TRACE);
    await server.status(id, "completed");
    const spans = await eventually(() => {
      const of = receiver.spans.filter((s) => s.attributes["cicd.pipeline.run.id"] === id);
      return of.some((s) => s.name === "RUN traced") && of.some((s) => s.name === "build") ? of : undefined;
    }, "the run's spans");
    const run = spans.find((s) => s.name === "RUN traced")!;
    const build = spans.find((s) => s.name === "build")!;
    expect(build.parentSpanId).toBe(run.spanId);
    expect(run.attributes).toMatchObject({
      "cicd.pipeline.name": "traced",
      "cicd.pipeline.result": "success",
    });
    const log = await (await server.api(`/runs/${id}/logs`)).text();
    expect(log).toContain(`traceparent=00-${run.traceId}-${build.spanId}-01`);
  });
});
