/**
 * `slipway serve`: the long-lived process that hosts every pipeline run of a database and serves the
 * HTTP API. It continues incomplete runs at start; on SIGINT or SIGTERM it stops accepting requests,
 * stops its jobs and leaves the runs in the database, to continue at the next start.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname as machineName } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve as listen } from "@hono/node-server";
import { NotFoundError } from "../../errors.js";
import { createApp } from "../../http/app.js";
import { DEFAULT_TOKEN_NAME } from "../../http/auth.js";
import { API_PREFIX } from "../../http/routes.js";
import { parsePipeline } from "../../pipeline/parse.js";
import { PipelineError } from "../../pipeline/problems.js";
import { describeConfig } from "../../runs/config.js";
import { LocalRuns } from "../../runs/local.js";
import { startRetention } from "../../runs/retention.js";
import { ConfigError } from "../../scheduler/config.js";
import type { Storage } from "../../storage/types.js";
import { loadSources, type SourceConfig } from "../../triggers/config.js";
import { TriggerService } from "../../triggers/service.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { readTokenFile } from "../connect.js";
import { dbPath } from "../state.js";

export const DEFAULT_PORT = 7420;

/** How long an idle HTTP connection stays open: longer than the 60 s of common load balancers. */
const KEEP_ALIVE_MS = 65_000;

export const serve: Command = {
  name: "serve",
  summary: "Host pipeline runs in one long-lived process and serve the HTTP API (/api/v1) and dashboard (/)",
  usage: [
    "slipway serve [--port N] [--host H] [--db PATH] [--config FILE] [--token-file FILE | --token T]",
    "              [--pipeline FILE]...",
    "",
    `Listens on 127.0.0.1:${DEFAULT_PORT} unless told otherwise (--port 0: any free port; the line`,
    "`listening on http://HOST:PORT` names the real one). Every request but /healthz needs",
    "`Authorization: Bearer <token>`: one of the config's `tokens:` (each with a role: read, operate,",
    "admin), or the admin token of --token-file (kept out of `ps`), --token or SLIPWAY_TOKEN. With",
    "none of these, a random admin token is printed once.",
    "--pipeline registers a pipeline file, so runs of it can be submitted by its name.",
    "--config is the server's configuration file (resource pools, locks, tokens, retention, job_env,",
    "public_url: where people reach the server, for links in reports to forges; metrics: { public: true }",
    "to scrape GET /metrics without a token). OTEL_EXPORTER_OTLP_ENDPOINT turns traces on (docs/observability.md).",
    "Jobs inherit only an allow-list of the server's environment (PATH, HOME, LANG...) and `job_env:`.",
    "`sources:` in it starts runs from git pushes, pull requests, comments and schedules (docs/triggers.md).",
    "The web dashboard is at the root URL: sign in with any of these tokens (docs/dashboard.md).",
    "Incomplete runs continue at start; SIGINT/SIGTERM stop the server, leaving them for the next start.",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(
      args,
      {
        db: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        config: { type: "string" },
        token: { type: "string" },
        "token-file": { type: "string" },
        pipeline: { type: "string", multiple: true },
      },
      0,
    );
    const port = Number(values.port ?? DEFAULT_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port wants a port number (0 for any free one), got "${values.port}"`);
    const hostname = values.host ?? "127.0.0.1";
    const registered = registerPipelines(values.pipeline ?? [], io);
    if (!registered) return EXIT.usage;
    if (values.token !== undefined && values["token-file"] !== undefined)
      throw new UsageError("give --token-file or --token, not both");
    let token =
      values.token ??
      (values["token-file"] === undefined ? undefined : readTokenFile(values["token-file"])) ??
      process.env.SLIPWAY_TOKEN;
    if (token === "") token = undefined;

    let sources: SourceConfig[];
    try {
      sources = loadSources(values.config === undefined ? undefined : resolve(values.config));
    } catch (error) {
      if (!(error instanceof ConfigError || error instanceof NotFoundError)) throw error;
      io.err(`slipway: ${error.message}\n`);
      return EXIT.usage;
    }
    let runs: LocalRuns;
    try {
      runs = await LocalRuns.open({
        db: dbPath(values.db, "write"),
        registered,
        adopt: "all",
        // A server's jobs never see its environment beyond an allow-list: its tokens stay with it.
        jobEnv: "allowed",
        // `GET /metrics`; traces when `OTEL_EXPORTER_OTLP_ENDPOINT` says where (docs/observability.md).
        observe: { metrics: true },
        ...(values.config !== undefined && { config: resolve(values.config) }),
      });
    } catch (error) {
      // A config file with problems (each at file:line:col) or missing is a usage error.
      if (!(error instanceof ConfigError || error instanceof NotFoundError)) throw error;
      io.err(`slipway: ${error.message}\n`);
      return EXIT.usage;
    }
    const { tokens, retention } = runs.runtime.config;
    if (token !== undefined && tokens.some((t) => t.name === DEFAULT_TOKEN_NAME)) {
      await runs.close();
      io.err(
        `slipway: the config names a token \`${DEFAULT_TOKEN_NAME}\`, the name of the --token/SLIPWAY_TOKEN token: rename it\n`,
      );
      return EXIT.usage;
    }
    if (token === undefined && tokens.length === 0) {
      token = randomBytes(24).toString("base64url");
      io.out(`token ${token} (generated: give it to clients as --token-file, --token or SLIPWAY_TOKEN)\n`);
    }
    const logger = runs.runtime.logger;
    // Links to runs in reports to forges: `public_url:`, else the listen address (known once listening).
    let publicUrl = runs.runtime.config.publicUrl;
    const triggers = new TriggerService({
      runUrl: (id) => publicUrl && `${publicUrl}${API_PREFIX}/runs/${encodeURIComponent(id)}`,
      runs,
      store: runs.runtime.storage.triggers(),
      sources,
      registered,
      dataDir: runs.runtime.dataDir,
      launcher: runs.runtime.jobs.launcher,
      log: (message) => logger.info({ triggers: true }, message),
      // Of several servers on one database, one polls each source: leases held under the executor's id.
      owner: runs.runtime.executor.owner,
      executors: () => runs.runtime.storage.listExecutors(),
    });
    const app = createApp({
      runs,
      logger,
      token,
      tokens,
      audit: runs.audit,
      config: () => describeConfig(runs.runtime.config),
      storageHealth: () => {
        const storage: Storage = runs.runtime.storage;
        return storage.health?.();
      },
      triggers,
      // Built beside this file: dist/web next to dist/cli.
      web: fileURLToPath(new URL("../../web", import.meta.url)),
      ...(runs.runtime.observability.metrics && {
        metrics: { metrics: runs.runtime.observability.metrics, public: runs.runtime.config.metrics.public },
      }),
      hooks: triggers.hooks((error) =>
        logger.error({ err: error, triggers: true }, "webhook delivery failed after its answer"),
      ),
    });
    const pruning =
      retention &&
      startRetention({
        ...retention,
        runs,
        clock: runs.runtime.executor.clock,
        logger: runs.runtime.logger,
      });
    const server = listen({ fetch: app.fetch, port, hostname });
    // Idle connections are kept longer than the clients and proxies in front keep theirs (load
    // balancers commonly 60 s): with Node's 5 s a client reusing a connection just as the server
    // closes it gets ECONNRESET, and a proxy answers 502.
    if ("keepAliveTimeout" in server) server.keepAliveTimeout = KEEP_ALIVE_MS;
    try {
      await Promise.race([
        once(server, "listening"),
        once(server, "error").then(([error]) => {
          throw error;
        }),
      ]);
    } catch (error) {
      await pruning?.stop();
      await runs.close();
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      io.err(`slipway: cannot listen on ${hostname}:${port}: ${code}\n`);
      return EXIT.failed;
    }
    const address = server.address() as AddressInfo;
    const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
    io.out(`listening on http://${shown}:${address.port}\n`);
    publicUrl ??= listenUrl(address);
    // Polling starts once the API answers, so whoever watches `GET /triggers` sees the first poll.
    triggers.start();

    const signal = await new Promise<NodeJS.Signals>((done) => {
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    io.err(`${signal}: stopping; runs continue at the next start (press Ctrl-C again to stop at once)\n`);
    const again = () => process.exit(EXIT.interrupted);
    process.once("SIGINT", again);
    process.once("SIGTERM", again);
    // Stop accepting, and end open streams (events, logs -f): their clients reconnect to the next server.
    const closed = new Promise<void>((done) => server.close(() => done()));
    if ("closeAllConnections" in server) server.closeAllConnections();
    await closed;
    await triggers.stop();
    await pruning?.stop();
    await runs.close();
    return EXIT.ok;
  },
};

/** Where the server is reached by default: its listen address, or this machine's name when it listens on all. */
function listenUrl(address: AddressInfo): string {
  const any = address.address === "0.0.0.0" || address.address === "::";
  const host = any ? machineName() : address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** `--pipeline FILE`: each file's pipeline by its name; undefined (problems reported) when one is invalid. */
function registerPipelines(files: readonly string[], io: Io): Map<string, string> | undefined {
  const registered = new Map<string, string>();
  for (const file of files) {
    try {
      registered.set(parsePipeline(readFileSync(file, "utf8"), file).name, resolve(file));
    } catch (error) {
      if (error instanceof PipelineError) io.err(`${error.message}\n`);
      else
        io.err(
          `slipway: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`,
        );
      return undefined;
    }
  }
  return registered;
}
