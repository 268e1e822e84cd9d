/**
 * `slipway serve` over HTTP, against the real process: submitting (API and `slipway submit`), events
 * over SSE, list/show/logs, signals, cancel with undos, hold and retry, and what it refuses.
 */

import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../../src/engine/events.js";
import type { QueueResponse, RunDetail, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project, processesWith, uniqueSleep } from "../cli/harness.js";
import { listRuns, startServer } from "./server.js";

const SHIP = `name: ship
inputs:
  tag:
    default: "1.0"
jobs:
  build:
    run: echo build >> trace; echo "digest=sha-\${{ inputs.tag }}" >> "$SLIPWAY_OUTPUT"
  publish:
    needs: [build]
    run: echo "publish \${{ needs.build.outputs.digest }}" >> trace; echo published
`;

const types = (events: readonly RunEvent[]) => events.map((e) => e.type);

describe("slipway serve", () => {
  it("runs a pipeline file submitted over the API, streams its events, lists, shows and logs it", async () => {
    const project = new Project();
    project.write("ship.yml", SHIP);
    const server = await startServer(project);

    const submitted = await server.json<SubmitResponse>(
      "POST",
      "/runs",
      { file: { name: `${project.dir}/ship.yml`, source: SHIP }, inputs: { tag: "2.0" }, name: "ship-1" },
      201,
    );
    expect(submitted).toMatchObject({ name: "ship-1", pipeline: "ship", jobs: 2 });

    const events = await server.events(submitted.id);
    expect(types(events)[0]).toBe("run:started");
    expect(types(events).at(-1)).toBe("run:completed");
    expect(events.filter((e) => e.type === "action:completed").map((e) => e.action)).toEqual([
      "build",
      "publish",
    ]);
    expect(project.trace()).toEqual(["build", "publish sha-2.0"]);

    // Reconnecting after a seq sends only what came after it.
    const seqs = events.flatMap((e) => (e.seq === undefined ? [] : [e.seq]));
    const later = await server.events(submitted.id, seqs[2]);
    expect(later.map((e) => e.seq)).toEqual(seqs.slice(3));

    const runs = await listRuns(server);
    expect(runs.map((r) => [r.id, r.name, r.status])).toEqual([[submitted.id, "ship-1", "completed"]]);
    const shown = await server.json<RunDetail>("GET", "/runs/ship-1");
    expect(shown.steps.map((s) => [s.job, s.status])).toEqual([
      ["build", "completed"],
      ["publish", "completed"],
    ]);
    expect(shown.spec).toMatchObject({ inputs: { tag: "2.0" } });
    expect(shown.plan?.steps.map((s) => s.label)).toEqual(["build", "publish"]);
    const filtered = await server.json<unknown[]>("GET", "/runs?status=running,waiting");
    expect(filtered).toEqual([]);

    const logs = await server.api(`/runs/${submitted.id}/logs?job=publish`);
    expect(logs.headers.get("content-type")).toContain("text/plain");
    expect(await logs.text()).toMatch(/^==> publish \(attempt 1\) <==\n\S+ out published\n$/);

    // The CLI against the same server prints what it prints embedded.
    const ls = await project.run(["ls", ...server.flags]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`${submitted.id}\\s+ship-1\\s+ship\\s+completed`));
    const show = await project.run(["show", "ship-1", ...server.flags]);
    expect(show.stdout).toMatch(/publish\s+completed\s+1/);
    const cliLogs = await project.run(["logs", "ship-1", "publish", ...server.flags]);
    expect(cliLogs.stdout).toContain("==> publish (attempt 1) <==");
    expect(cliLogs.stdout).toContain("out published");
  });

  it("submits with `slipway submit --server` and follows the run to its exit code", async () => {
    const project = new Project();
    project.write("ship.yml", SHIP);
    const server = await startServer(project, ["--pipeline", "ship.yml"]);

    // A pipeline registered with the server runs by its name.
    const byName = await server.json<SubmitResponse>("POST", "/runs", { pipeline: "ship" }, 201);
    await server.status(byName.id, "completed");
    const unknown = await server.api("/runs", { method: "POST", body: JSON.stringify({ pipeline: "shop" }) });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toContain(
      "registered: ship",
    );

    const queued = await project.run(["submit", "ship.yml", "--json", ...server.flags]);
    expect(queued.code, queued.stderr).toBe(0);
    const { id } = JSON.parse(queued.stdout) as { id: string };
    await server.status(id, "completed");

    const followed = await project.run(["submit", "ship.yml", "--follow", "-i", "tag=3.0", ...server.flags]);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(/^run \S+: ship, 2 jobs\n/);
    expect(followed.stdout).toContain("publish: done");
    expect(followed.stdout).toMatch(/run \S+ completed in/);

    // `slipway run` with a server set is `submit --follow`; a failure exits 1 with the summary.
    project.write("fail.yml", "name: fail\njobs:\n  broken:\n    run: exit 4\n");
    const failed = await project.run(["run", "fail.yml"], {
      SLIPWAY_SERVER: server.url,
      SLIPWAY_TOKEN: "test-token",
    });
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stdout).toMatch(/run \S+ compensated/);
    expect(failed.stdout).toContain("broken failed: ");
    expect(project.trace()).toEqual([
      "build",
      "publish sha-1.0",
      "build",
      "publish sha-1.0",
      "build",
      "publish sha-3.0",
    ]);
  });

  it("holds a wait job until a signal comes over the API, and says so in the queue", async () => {
    const project = new Project();
    project.write(
      "approve.yml",
      `name: approve
jobs:
  wait-approval:
    wait: { signal: approved }
  deploy:
    needs: [wait-approval]
    run: echo "deploy by \${{ needs.wait-approval.outputs.by }}" >> trace
`,
    );
    const server = await startServer(project);
    const { id } = await server.json<SubmitResponse>(
      "POST",
      "/runs",
      { file: { name: `${project.dir}/approve.yml`, source: project.read("approve.yml") } },
      201,
    );
    await server.status(id, "waiting");
    const queue = await server.json<QueueResponse>("GET", "/queue");
    expect(queue.jobs.map((j) => [j.job, j.reason, j.message])).toEqual([
      ["wait-approval", "signal", 'waiting for signal "approved"'],
      ["deploy", "needs", "after wait-approval"],
    ]);
    const show = await project.run(["show", id, ...server.flags]);
    expect(show.stdout).toContain('waiting for signal "approved"');

    const sent = await server.json<{ seq: number }>("POST", `/runs/${id}/signals/approved`, { by: "ana" });
    expect(sent.seq).toBeGreaterThan(0);
    await server.status(id, "completed");
    expect(project.trace()).toEqual(["deploy by ana"]);
    expect((await server.json<QueueResponse>("GET", "/queue")).jobs).toEqual([]);

    // An ended run takes no more signals.
    const late = await server.api(`/runs/${id}/signals/approved`, { method: "POST", body: "{}" });
    expect(late.status).toBe(409);
  });

  it("cancels a run over the API: the running job stops and completed jobs are undone", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    project.write(
      "deploy.yml",
      `name: deploy
jobs:
  prepare:
    run: echo prepare >> trace
    undo: echo "undo prepare" >> trace
  deploy:
    needs: [prepare]
    run: echo deploy >> trace; sleep ${sleep} & wait
`,
    );
    const server = await startServer(project);
    const submitted = await project.run(["submit", "deploy.yml", ...server.flags]);
    const id = submitted.stdout.trim();
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the deploy job's sleep");
    const cancelled = await project.run(["cancel", id, "--reason", "wrong branch", ...server.flags]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain(`cancel requested for ${id}`);
    const run = await server.status(id, "cancelled");
    expect(run.cause).toEqual({ kind: "cancel", reason: "wrong branch" });
    expect(project.trace()).toEqual(["prepare", "deploy", "undo prepare"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length === 0, "the sleep to be stopped");
  });

  it("holds a failed run and retries it from the failed job", async () => {
    const project = new Project();
    project.tool(
      "migrate",
      'echo migrate >> trace\nif [ ! -e fixed ]; then echo "schema lock held" >&2; exit 1; fi',
    );
    project.write(
      "held.yml",
      `name: held
on_failure: hold
jobs:
  build:
    run: echo build >> trace
  migrate:
    needs: [build]
    run: ./migrate
  release:
    needs: [migrate]
    run: echo release >> trace
`,
    );
    const server = await startServer(project);
    const first = await project.run(["submit", "held.yml", "--follow", ...server.flags]);
    expect(first.code, first.stdout + first.stderr).toBe(1);
    const id = /^run (\S+):/.exec(first.stdout)![1]!;
    expect(first.stdout).toContain(`slipway retry ${id}`);
    expect((await server.json<RunDetail>("GET", `/runs/${id}`)).status).toBe("failed");
    const queue = await server.json<QueueResponse>("GET", "/queue");
    expect(queue.jobs.map((j) => [j.job, j.reason])).toEqual([
      ["migrate", "held"],
      ["release", "held"],
    ]);

    project.write("fixed", "");
    const retried = await project.run(["retry", id, ...server.flags]);
    expect(retried.code, retried.stdout + retried.stderr).toBe(0);
    expect(retried.stdout).toContain("release: done");
    expect(project.trace()).toEqual(["build", "migrate", "migrate", "release"]);
    const again = await server.api(`/runs/${id}/retry`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { message: string } }).error.message).toContain("is completed");
  });

  it("refuses what it must: tokens, malformed and oversized bodies, unknown routes, invalid pipelines", async () => {
    const project = new Project();
    const server = await startServer(project);
    const body = JSON.stringify({ file: { name: "x.yml", source: SHIP } });
    const headers = { "content-type": "application/json" };

    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    // On PostgreSQL it also says whether the database is reachable (docs/server.md).
    expect(await health.json()).toMatchObject({ ok: true });

    const before = await listRuns(server);
    const bad = await server.api("/runs", { method: "POST", body, headers, token: "wrong" });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: { code: "unauthorized", message: "invalid token" } });
    const missing = await server.api("/runs", { method: "POST", body, headers, token: null });
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain(
      "missing bearer token",
    );
    expect((await server.api("/runs", { token: null })).status).toBe(401);
    expect(await listRuns(server)).toEqual(before);

    const malformed = await server.api("/runs", { method: "POST", body: '{"file": ', headers });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe("malformed_json");

    const both = await server.api("/runs", {
      method: "POST",
      headers,
      body: JSON.stringify({ pipeline: "ship", file: { name: "x.yml", source: SHIP } }),
    });
    expect(both.status).toBe(400);
    expect(JSON.stringify(await both.json())).toContain("exactly one of");

    const huge = await server.api("/runs", {
      method: "POST",
      headers,
      body: JSON.stringify({ file: { name: "x.yml", source: "#".repeat(2 * 1024 * 1024) } }),
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: { message: string } }).error.message).toContain(
      "larger than the limit",
    );

    const unknown = await server.api("/nothing-here");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect((await server.api("/runs/no-such-run")).status).toBe(404);

    const invalid = await server.api("/runs", {
      method: "POST",
      headers,
      body: JSON.stringify({
        file: { name: "bad.yml", source: "name: bad\njobs:\n  a:\n    runs-on: ubuntu\n" },
      }),
    });
    expect(invalid.status).toBe(400);
    const problems = ((await invalid.json()) as { error: { problems: string[] } }).error.problems;
    expect(problems).toContain(
      "bad.yml:3:3: job `a` needs one of `run`, `wait`, `poll` or `uses`: what it does",
    );
    expect(
      problems.some((p) => /^bad\.yml:4:5: .*runs-on/.test(p)),
      problems.join("\n"),
    ).toBe(true);
    const inputs = await server.api("/runs", {
      method: "POST",
      headers,
      body: JSON.stringify({ file: { name: "x.yml", source: SHIP }, inputs: { nope: "1" } }),
    });
    expect(inputs.status).toBe(400);
    expect(JSON.stringify(await inputs.json())).toContain("nope");

    project.write("bad.yml", "name: bad\njobs:\n  a:\n    runs-on: ubuntu\n");
    const cli = await project.run(["submit", "bad.yml", ...server.flags]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/bad\.yml:4:5: .*runs-on/);
    const refused = await project.run(["ls", "--server", server.url, "--token", "nope"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("refused the token");
    expect(await listRuns(server)).toEqual(before);
  });
});
