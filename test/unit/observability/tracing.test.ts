/**
 * Traces of runs, received by a real OTLP/HTTP receiver: a run's span with its job attempts under
 * it, a wait for a lock under the attempt that waited, the undo of a failed run, CI/CD attributes,
 * `TRACEPARENT` in a job naming its attempt's span; a run continued by another process stays in its
 * trace; and nothing is traced (nor loaded) without the variables.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tracingOptions } from "../../../src/observability/trace-ids.js";
import { LocalRuns } from "../../../src/runs/local.js";
import { eventually, tempDir } from "../../helpers.js";
import { type ReceivedSpan, type Receiver, startReceiver } from "../../otlp.js";

const HOLD = `name: hold
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: while [ ! -e release ]; do sleep 0.05; done
`;

const TRACED = `name: traced
jobs:
  setup:
    run: echo "$TRACEPARENT" > traceparent
    undo: echo "$TRACEPARENT" > undo-traceparent
  deploy:
    needs: [setup]
    resources: { locks: [swarm] }
    run: exit 3
`;

let receiver: Receiver;
const opened: LocalRuns[] = [];
beforeEach(async () => {
  receiver = await startReceiver();
});
afterEach(async () => {
  for (const runs of opened.splice(0)) await runs.close();
  await receiver.close();
});

async function open(dir: string, env: NodeJS.ProcessEnv): Promise<LocalRuns> {
  writeFileSync(join(dir, "slipway.yml"), "locks: { swarm: 1 }\n");
  const runs = await LocalRuns.open({
    db: join(dir, "slipway.db"),
    config: join(dir, "slipway.yml"),
    adopt: "all",
    launcher: false,
    pollIntervalMs: 50,
    observe: { env },
  });
  opened.push(runs);
  return runs;
}

function spansOf(runId: string): ReceivedSpan[] {
  return receiver.spans.filter((s) => s.attributes["cicd.pipeline.run.id"] === runId);
}

describe("traces", () => {
  it("has a run span, job attempts under it, the wait for a lock, and the undo of a failed run", async () => {
    const dir = tempDir();
    const runs = await open(dir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    const submit = (name: string, source: string) => {
      writeFileSync(join(dir, name), source);
      return runs.submit({ file: join(dir, name), source });
    };
    const holder = await submit("hold.yml", HOLD);
    await eventually(() => runs.runtime.jobs.resources!.admission.snapshot().granted === 1, "the lock held");
    let told = false;
    const stop = runs.runtime.executor.on((event) => {
      if (event.type === "action:progress" && event.data?.queued === true) told = true;
    });
    const traced = await submit("traced.yml", TRACED);
    await eventually(() => told, "the deploy told why it waits");
    stop();
    writeFileSync(join(dir, "release"), "");
    await eventually(
      async () => (await runs.show(traced.id)).status === "compensated",
      "the traced run undone",
    );
    await eventually(() => spansOf(traced.id).some((s) => s.name === "RUN traced"), "the run's span");
    await eventually(() => spansOf(holder.id).some((s) => s.name === "RUN hold"), "the holder's span");
    expect(receiver.refused).toEqual([]);

    const spans = spansOf(traced.id);
    const run = spans.find((s) => s.name === "RUN traced")!;
    expect(run.parentSpanId).toBeUndefined();
    expect(run.kind).toBe(2); // SERVER
    expect(run.status.code).toBe(2); // ERROR
    expect(run.attributes).toMatchObject({
      "cicd.pipeline.name": "traced",
      "cicd.pipeline.run.id": traced.id,
      "cicd.pipeline.result": "failure",
      "cicd.pipeline.action.name": "RUN",
    });
    expect(run.resource["service.name"]).toBe("slipway");
    expect(run.resource["service.instance.id"]).toBe(runs.runtime.executor.owner);
    // One trace per run.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([run.traceId]));
    expect(spansOf(holder.id)[0]!.traceId).not.toBe(run.traceId);

    const setup = spans.find((s) => s.name === "setup")!;
    const deploy = spans.find((s) => s.name === "deploy")!;
    for (const attempt of [setup, deploy]) {
      expect(attempt.parentSpanId).toBe(run.spanId);
      expect(attempt.attributes["slipway.attempt"]).toBe(1);
      expect(attempt.startMs).toBeGreaterThanOrEqual(run.startMs);
      expect(attempt.endMs).toBeLessThanOrEqual(run.endMs);
    }
    expect(setup.attributes).toMatchObject({
      "cicd.pipeline.task.name": "setup",
      "cicd.pipeline.task.run.result": "success",
    });
    expect(deploy.attributes).toMatchObject({
      "cicd.pipeline.task.name": "deploy",
      "cicd.pipeline.task.run.result": "failure",
    });
    expect(deploy.status.code).toBe(2);

    const wait = spans.find((s) => s.name.startsWith("wait for"))!;
    expect(wait.name).toBe("wait for lock:swarm");
    expect(wait.parentSpanId).toBe(deploy.spanId);
    expect(wait.attributes["slipway.wait.resources"]).toEqual(["lock:swarm"]);
    expect(wait.attributes["slipway.wait.reason"]).toMatch(
      new RegExp(`waits for lock swarm \\(1 of 1 held by run ${holder.id} job deploy`),
    );
    expect(wait.events.map((e) => e.name)).toContain("queued");
    expect(wait.endMs).toBeGreaterThanOrEqual(wait.startMs);

    const undo = spans.find((s) => s.name === "undo setup")!;
    expect(undo.parentSpanId).toBe(run.spanId);
    expect(undo.attributes).toMatchObject({ "cicd.pipeline.task.name": "setup", "slipway.phase": "undo" });
    expect(undo.startMs).toBeGreaterThanOrEqual(deploy.endMs);

    // The job's processes name their span: the attempt's, the undo's.
    expect(readFileSync(join(dir, "traceparent"), "utf8").trim()).toBe(
      `00-${run.traceId}-${setup.spanId}-01`,
    );
    expect(readFileSync(join(dir, "undo-traceparent"), "utf8").trim()).toBe(
      `00-${run.traceId}-${undo.spanId}-01`,
    );
  });

  it("keeps a run in one trace when another process continues it", async () => {
    const dir = tempDir();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" };
    const source = `name: gated
jobs:
  build:
    run: echo built
  approve:
    needs: [build]
    wait: { signal: go }
  ship:
    needs: [approve]
    run: echo shipped
`;
    writeFileSync(join(dir, "gated.yml"), source);
    const first = await open(dir, env);
    const run = await first.submit({ file: join(dir, "gated.yml"), source });
    await eventually(async () => (await first.show(run.id)).status === "waiting", "the run parked");
    await first.close();
    opened.splice(opened.indexOf(first), 1);

    const second = await open(dir, env);
    await second.signal(run.id, "go");
    await eventually(async () => (await second.show(run.id)).status === "completed", "the run continued");
    await eventually(() => spansOf(run.id).some((s) => s.name === "RUN gated"), "the run's span");
    const spans = spansOf(run.id);
    const root = spans.find((s) => s.name === "RUN gated")!;
    expect(root.attributes["cicd.pipeline.result"]).toBe("success");
    const build = spans.find((s) => s.name === "build")!;
    const ship = spans.find((s) => s.name === "ship")!;
    // `build` ran in the first process, `ship` and the run's end in the second: one trace, one parent.
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(build.parentSpanId).toBe(root.spanId);
    expect(ship.parentSpanId).toBe(root.spanId);
    expect(root.startMs).toBeLessThanOrEqual(build.startMs);
  });

  it("puts a child pipeline's run in its parent's trace, under the parent run's span", async () => {
    const dir = tempDir();
    const runs = await open(dir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    writeFileSync(
      join(dir, "child.yml"),
      `name: child\njobs:\n  roll:\n    run: echo "$TRACEPARENT" > child-traceparent\n`,
    );
    const source = `name: parent\njobs:\n  deploy:\n    uses: ./child.yml\n`;
    writeFileSync(join(dir, "parent.yml"), source);
    const run = await runs.submit({ file: join(dir, "parent.yml"), source });
    await eventually(async () => (await runs.show(run.id)).status === "completed", "the parent run");
    const parent = await eventually(
      () => spansOf(run.id).find((s) => s.name === "RUN parent"),
      "the parent's span",
    );
    const child = await eventually(
      () => receiver.spans.find((s) => s.name === "RUN child"),
      "the child's span",
    );
    expect(child.traceId).toBe(parent.traceId);
    expect(child.parentSpanId).toBe(parent.spanId);
    expect(child.attributes["slipway.parent.run.id"]).toBe(run.id);
    const roll = await eventually(() => receiver.spans.find((s) => s.name === "roll"), "the child's job");
    expect(roll.parentSpanId).toBe(child.spanId);
    expect(readFileSync(join(dir, "child-traceparent"), "utf8").trim()).toBe(
      `00-${parent.traceId}-${roll.spanId}-01`,
    );
  });

  it("never holds a run up when the collector is down, nor the process's stop", async () => {
    const dir = tempDir();
    // Nothing listens on port 1: every export fails.
    const runs = await open(dir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1",
      OTEL_BSP_SCHEDULE_DELAY: "10",
    });
    const source = `name: lonely\njobs:\n  only:\n    run: echo "$TRACEPARENT" > traceparent\n`;
    writeFileSync(join(dir, "lonely.yml"), source);
    const run = await runs.submit({ file: join(dir, "lonely.yml"), source });
    await eventually(async () => (await runs.show(run.id)).status === "completed", "the run");
    expect(readFileSync(join(dir, "traceparent"), "utf8")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01\n$/);
    const started = Date.now();
    await runs.close();
    opened.splice(opened.indexOf(runs), 1);
    // One export's timeout (3 s), not the SDK's 10 s of retries.
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it("is off without an OTLP endpoint in the environment, and jobs get no TRACEPARENT", async () => {
    expect(tracingOptions({})).toBeUndefined();
    expect(
      tracingOptions({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBeUndefined();
    expect(tracingOptions({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })?.url).toBe(
      "http://c:4318/v1/traces",
    );
    expect(
      tracingOptions({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom", OTEL_SERVICE_NAME: "ci" }),
    ).toEqual({ url: "http://c:4318/custom", serviceName: "ci", timeoutMs: 3000 });

    const dir = tempDir();
    const runs = await open(dir, {});
    expect(runs.runtime.observability.tracing).toBeUndefined();
    const source = `name: plain\njobs:\n  only:\n    run: echo "[$TRACEPARENT]" > traceparent\n`;
    writeFileSync(join(dir, "plain.yml"), source);
    const run = await runs.submit({ file: join(dir, "plain.yml"), source });
    await eventually(async () => (await runs.show(run.id)).status === "completed", "the run");
    expect(readFileSync(join(dir, "traceparent"), "utf8").trim()).toBe("[]");
  });
});
