/**
 * Who may do what on a real `slipway serve`: named tokens with roles from its config, 401/403 by role
 * for each class of route, the audit log of mutating requests, signals' Idempotency-Key, --token-file
 * (the token is not in the process's argv), what a job sees of the server's environment, and retention.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVER_JOB_ENV } from "../../../src/pipeline/job-env.js";
import { tokenHash } from "../../../src/runs/config.js";
import type { AuditPage, ErrorResponse, SignalResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

const VIEWER = "viewer-token-1";
const CI = "ci-token-2";
const BOSS = "boss-token-3";
const FILE_TOKEN = "file-admin-token-4";

const CONFIG = `tokens:
  viewer: { role: read, hash: "${tokenHash(VIEWER)}" }
  ci: { role: operate, hash: "${tokenHash(CI)}" }
  boss: { role: admin, hash: "${tokenHash(BOSS)}" }
job_env: [AWS_PROFILE]
`;

const GATE = `name: gate
jobs:
  approve:
    wait: { signal: go }
  after:
    needs: [approve]
    run: echo "approved by \${{ needs.approve.outputs.by }}"
`;

/** A server with the config's tokens and an admin token from a file. */
async function serve(project: Project, config = CONFIG, env: NodeJS.ProcessEnv = {}): Promise<Server> {
  project.write("slipway.yml", config);
  const tokenFile = project.write("admin.token", `${FILE_TOKEN}\n`);
  return startServer(project, ["--config", "slipway.yml"], {
    tokenArgs: ["--token-file", tokenFile],
    env,
    token: VIEWER,
  });
}

async function status(server: Server, method: string, path: string, token: string | null, body?: unknown) {
  const response = await server.api(path, {
    method,
    token,
    ...(body !== undefined && {
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    }),
  });
  const text = await response.text();
  return { status: response.status, text };
}

async function submit(server: Server, project: Project, source: string, token: string): Promise<string> {
  const response = await server.api("/runs", {
    method: "POST",
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ file: { name: `${project.dir}/p.yml`, source } }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return ((await response.json()) as SubmitResponse).id;
}

describe("slipway serve: access", () => {
  it("answers 401 without a known token and 403 for a role too low, for each class of route", async () => {
    const project = new Project();
    const server = await serve(project);
    const id = await submit(server, project, GATE, CI);

    // read: every GET but the audit log.
    for (const path of [
      "/runs",
      `/runs/${id}`,
      `/runs/${id}/logs`,
      "/queue",
      "/resources",
      "/workers",
      "/executors",
      "/openapi.json",
    ]) {
      expect((await status(server, "GET", path, null)).status, path).toBe(401);
      expect((await status(server, "GET", path, "guess")).status, path).toBe(401);
      for (const token of [VIEWER, CI, BOSS, FILE_TOKEN])
        expect((await status(server, "GET", path, token)).status, `${path} ${token}`).toBe(200);
    }
    // operate: submit, cancel, signal, retry, resume.
    const refused = await status(server, "POST", `/runs/${id}/signals/go`, VIEWER, { by: "viewer" });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.text) as ErrorResponse).toEqual({
      error: {
        code: "forbidden",
        message: 'token "viewer" has role read; POST /runs/:id/signals/:name needs role operate',
      },
    });
    expect((await status(server, "POST", `/runs/${id}/cancel`, VIEWER, {})).status).toBe(403);
    expect((await status(server, "POST", `/runs/${id}/retry`, VIEWER)).status).toBe(403);
    expect((await status(server, "POST", "/runs", VIEWER, { pipeline: "gate" })).status).toBe(403);
    expect((await status(server, "POST", `/runs/${id}/signals/go`, null, {})).status).toBe(401);
    expect((await status(server, "POST", `/runs/${id}/signals/go`, CI, { by: "ci" })).status).toBe(200);
    await server.status(id, "completed");
    // admin: prune and the audit log.
    for (const token of [VIEWER, CI]) {
      expect((await status(server, "POST", "/prune", token, { endedBefore: 0 })).status).toBe(403);
      expect((await status(server, "GET", "/audit", token)).status).toBe(403);
    }
    expect((await status(server, "GET", "/audit", null)).status).toBe(401);
    for (const token of [BOSS, FILE_TOKEN]) {
      expect((await status(server, "POST", "/prune", token, { endedBefore: 0 })).status).toBe(200);
      expect((await status(server, "GET", "/audit", token)).status).toBe(200);
    }
    expect((await status(server, "GET", `/runs/${id}`, VIEWER)).status).toBe(200);
    // admin: the configuration, with its tokens' names and roles, never a hash.
    expect((await status(server, "GET", "/config", CI)).status).toBe(403);
    const config = await status(server, "GET", "/config", BOSS);
    expect(config.status).toBe(200);
    expect(JSON.parse(config.text)).toMatchObject({
      tokens: [
        { name: "default", role: "admin" },
        { name: "viewer", role: "read" },
        { name: "ci", role: "operate" },
        { name: "boss", role: "admin" },
      ],
      retention: null,
      jobEnv: [...SERVER_JOB_ENV, "AWS_PROFILE"],
    });
    expect(config.text).not.toContain(tokenHash(CI).slice(7, 30));
  });

  it("records every mutating request, refused ones too, for admin to read; the token file's token is not in argv", async () => {
    const project = new Project();
    const server = await serve(project);
    const cmdline = readFileSync(`/proc/${server.process.child.pid}/cmdline`, "utf8");
    expect(cmdline).toContain("--token-file");
    expect(cmdline).not.toContain(FILE_TOKEN);

    const id = await submit(server, project, GATE, CI);
    expect((await status(server, "POST", `/runs/${id}/cancel`, VIEWER, {})).status).toBe(403);
    expect((await status(server, "POST", `/runs/${id}/cancel`, CI, { reason: "no" })).status).toBe(200);
    expect((await status(server, "POST", "/prune", FILE_TOKEN, { endedBefore: 0 })).status).toBe(200);
    expect((await status(server, "GET", "/runs", BOSS)).status).toBe(200);

    const page = JSON.parse((await status(server, "GET", "/audit", BOSS)).text) as AuditPage;
    expect(page.entries.map((e) => [e.actor, e.method, e.route, e.run, e.status])).toEqual([
      ["default", "POST", "/prune", null, 200],
      ["ci", "POST", "/runs/:id/cancel", id, 200],
      ["viewer", "POST", "/runs/:id/cancel", id, 403],
      ["ci", "POST", "/runs", id, 201],
    ]);
    const [newest, , , oldest] = page.entries;
    expect(newest!.at).toBeGreaterThanOrEqual(oldest!.at);
    const first = JSON.parse((await status(server, "GET", "/audit?limit=1", BOSS)).text) as AuditPage;
    expect(first.entries).toEqual([newest]);
    const second = JSON.parse(
      (await status(server, "GET", `/audit?limit=1&before=${first.next}`, BOSS)).text,
    );
    expect((second as AuditPage).entries.map((e) => e.actor)).toEqual(["ci"]);

    // The CLI takes the token from a file too (--token-file, SLIPWAY_TOKEN_FILE).
    const ciFile = project.write("ci.token", `${CI}\n`);
    const listed = await project.run(["ls", "--server", server.url, "--token-file", ciFile]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(id);
    const viaEnv = await project.run(["prune", "--older-than", "1d", "--server", server.url], {
      SLIPWAY_TOKEN_FILE: ciFile,
      SLIPWAY_TOKEN: "",
    });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toContain('token "ci" has role operate; POST /prune needs role admin');
  });

  it("delivers a signal once for one Idempotency-Key, and answers each repeat as the first", async () => {
    const project = new Project();
    const server = await serve(project);
    // A second wait keeps the run waiting for one more signal after the first.
    const gate = `${GATE}  finish:\n    needs: [after]\n    wait: { signal: done }\n`;
    const id = await submit(server, project, gate, CI);
    const send = (key: string | undefined, by: string, name = "go") =>
      server.api(`/runs/${id}/signals/${name}`, {
        method: "POST",
        token: CI,
        headers: { "content-type": "application/json", ...(key !== undefined && { "idempotency-key": key }) },
        body: JSON.stringify({ by }),
      });
    const answers = await Promise.all([send("approve-1", "alice"), send("approve-1", "alice")]);
    const again = await send("approve-1", "alice");
    const bodies = await Promise.all([...answers, again].map(async (r) => [r.status, await r.json()]));
    const first = bodies[0]![1] as SignalResponse;
    expect(bodies).toEqual([
      [200, first],
      [200, first],
      [200, first],
    ]);
    const conflict = await send("approve-1", "mallory");
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as ErrorResponse).error.code).toBe("idempotency_conflict");
    // `slipway signal --key` is the CLI side of the header: a repeat gets the first answer, the same seq.
    const cli = (by: string) =>
      project.run([
        "signal",
        id,
        "done",
        JSON.stringify({ by }),
        "--key",
        "finish-1",
        "--server",
        server.url,
        "--token",
        CI,
      ]);
    const sent = await cli("bob");
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout).toBe(`signal "done" sent to ${id} (seq ${first.seq + 1})\n`);
    expect((await cli("bob")).stdout).toBe(sent.stdout);
    const changed = await cli("eve");
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain('Idempotency-Key "finish-1" was already used for another request');
    // Only a server keeps keys.
    const local = await project.run(["signal", id, "done", "--key", "finish-1"]);
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("--key needs --server");
    await server.status(id, "completed");
    const logs = (await status(server, "GET", `/runs/${id}/logs`, VIEWER)).text;
    expect(logs).toContain("approved by alice");
    const audit = JSON.parse((await status(server, "GET", "/audit", BOSS)).text) as AuditPage;
    expect(audit.entries.filter((e) => e.key === "approve-1").map((e) => e.status)).toEqual([
      409, 200, 200, 200,
    ]);
    expect(audit.entries.filter((e) => e.key === "finish-1").map((e) => e.status)).toEqual([409, 200, 200]);
  });

  it("gives a job only allow-listed variables of the server's environment, never a token or credential", async () => {
    const project = new Project();
    const secrets = {
      SLIPWAY_TOKEN: "env-token-value-5",
      SLIPWAY_DEPLOY_SECRET: "slipway-secret-value-6",
      SLIPWAY_DB_PASSWORD: "slipway-password-value-7",
      SERVER_ONLY_VAR: "server-only-value-8",
      DEPLOY_KEY_SOURCE: "deploy-key-value-9",
    };
    const server = await serve(project, CONFIG, { ...secrets, AWS_PROFILE: "dev-profile", TZ: "UTC" });
    const source = `name: envdump
secrets:
  DEPLOY_KEY: { env: DEPLOY_KEY_SOURCE }
env:
  DECLARED: hello
jobs:
  dump:
    run: env; echo "key=$DEPLOY_KEY"
`;
    const id = await submit(server, project, source, CI);
    await server.status(id, "completed");
    const logs = (await status(server, "GET", `/runs/${id}/logs`, VIEWER)).text;
    for (const value of [...Object.values(secrets), FILE_TOKEN, CI, VIEWER, BOSS])
      expect(logs, value).not.toContain(value);
    // Each log line is `<time> out <text>`.
    const names = [...logs.matchAll(/^\S+ out ([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]!);
    expect(names).toContain("PATH");
    expect(logs).toContain("AWS_PROFILE=dev-profile");
    expect(logs).toContain("TZ=UTC");
    expect(logs).toContain("DECLARED=hello");
    expect(logs).toContain("DEPLOY_KEY=***");
    expect(logs).toContain("key=***");
    const given = new Set(["AWS_PROFILE", "DECLARED", "DEPLOY_KEY", "SLIPWAY", "SLIPWAY_OUTPUT", "key"]);
    const shell = new Set(["PWD", "OLDPWD", "SHLVL", "_"]);
    const allowed = (name: string) =>
      given.has(name) ||
      shell.has(name) ||
      /^SLIPWAY_(RUN_ID|RUN_NAME|PIPELINE|JOB|STEP|ATTEMPT|IDEMPOTENCY_KEY|WORKSPACE|EVENT|SHA)$/.test(
        name,
      ) ||
      SERVER_JOB_ENV.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));
    expect(names.filter((name) => !allowed(name))).toEqual([]);
    expect(names.filter((name) => /^SLIPWAY_.*(TOKEN|SECRET|PASSWORD)/.test(name))).toEqual([]);
  });

  it("prunes ended runs older than its retention, with their logs, while it runs", async () => {
    const project = new Project();
    const server = await serve(project, `${CONFIG}retention: { older_than: 1s, every: 1s }\n`);
    const id = await submit(server, project, "name: quick\njobs:\n  one:\n    run: echo one\n", CI);
    await server.status(id, "completed");
    await eventually(
      async () => (await status(server, "GET", `/runs/${id}`, VIEWER)).status === 404,
      () => `run ${id} to be pruned by retention`,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect((await status(server, "GET", `/runs/${id}/logs`, VIEWER)).status).toBe(404);
    expect(existsSync(join(project.dir, ".slipway", "logs", id)), "its log directory").toBe(false);
  });
});
