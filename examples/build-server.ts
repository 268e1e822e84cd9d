/** Story 4's build server as a saga: receive the source, build the image, write config and version records, activate; undone in reverse on failure. */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, normalize, relative, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { pino } from "pino";
import {
  ACTIVE_STATUSES,
  type ActionContext,
  createLogger,
  Executor,
  MemoryStorage,
  type RunEvent,
  type RunOutcome,
  SqliteStorage,
  type StepRecord,
  type Storage,
  saga,
  stagedRefSchema,
  z,
} from "slipway";

const ACTIONS = ["receive-source", "build-image", "create-config", "create-version", "activate"] as const;
const USAGE = `Usage: npm run example -- [options]

Runs the build saga of story 4 once, on embedded SQLite, and prints what it created or rolled back.

Options:
  --app <name>          Application to build (default "shop")
  --fail-at <action>    Make this action fail, to watch the rollback (or env FAIL_AT=<action>)
                        Actions: ${ACTIONS.join(", ")}
  --data-dir <dir>      Database, staged uploads, logs and the fake platform's files (default .slipway)
  --memory              Keep runs in memory instead of <data-dir>/slipway.db
  -h, --help            Show this help

Exit code: 0 when the build completed, 1 when it was rolled back (or needs attention), 2 on a usage error.`;

// ---- the fake platform ------------------------------------------------------------------------
// Everything "external" is a small file under <data-dir>/platform, so the example runs anywhere
// and each undo visibly removes what its action created.

/** Paths kept in outputs are relative to the platform folder, so the data directory can move. */
class Platform {
  constructor(readonly root: string) {}
  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }
  /** For messages: where the file is, from the current directory. */
  show(path: string): string {
    return relative(process.cwd(), this.path(path)) || ".";
  }
}

/** Written under a temporary name, then renamed: a crash mid-write never leaves half a record. */
async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  await writeFile(partial, `${JSON.stringify(value, null, 2)}\n`);
  await rename(partial, path);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

interface ActiveRecord {
  version: number;
  previous: number | null;
  /** Idempotency key of the activation: tells a re-run (or an undo) whether this pointer is its own. */
  activatedBy: string;
  at: string;
}

/**
 * The source "archive": a stand-in for a tarball, one `--- <path>` header line per file. In a real
 * server this would be the body of the upload request.
 */
async function* uploadedArchive(app: string, build: number): AsyncGenerator<Uint8Array> {
  const files: Record<string, string> = {
    "app.json": JSON.stringify({ name: app, env: { PORT: "8080", BUILD: String(build) } }),
    Buildfile: "FROM node:20-slim\nCOPY src /app\nCMD node /app/server.js",
    "src/server.js": `require("http").createServer(require("./routes")).listen(process.env.PORT);`,
    "src/routes.js": `module.exports = (req, res) => res.end("${app} build ${build}");`,
  };
  for (const [path, content] of Object.entries(files)) {
    // Chunks, like a request body arriving over the network.
    yield new TextEncoder().encode(`--- ${path}\n${content}\n`);
  }
}

function unpack(archive: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const part of archive.split(/^--- /m).slice(1)) {
    const newline = part.indexOf("\n");
    const path = normalize(part.slice(0, newline));
    // The archive comes from outside: never let it write outside the workspace.
    if (path.startsWith("..") || resolve("/", path) !== join("/", path))
      throw new Error(`unsafe path in archive: ${path}`);
    files.set(path, part.slice(newline + 1));
  }
  return files;
}

// ---- the saga ----------------------------------------------------------------------------------

function buildServerSaga(platform: Platform, failAt: string | undefined) {
  /** The failure switch: fails before the action does anything, so there is nothing of its own to undo. */
  const maybeFail = (ctx: ActionContext) => {
    if (ctx.action === failAt) throw new Error(`simulated failure of "${ctx.action}" (fail-at switch)`);
  };

  return saga("build-server", {
    version: 1,
    input: { app: z.string().regex(/^[a-z0-9-]+$/), source: stagedRefSchema },
  })
    .action("receive-source", {
      reads: ["source"],
      produces: { workspace: z.string(), files: z.array(z.string()) },
      run: async ({ source }, ctx) => {
        maybeFail(ctx);
        // The staged file survives a crash, so a recovered run unpacks the same bytes.
        const bytes = await readFile(ctx.stagedPath(source));
        if (sha256(bytes) !== source.sha256) throw new Error("staged source is corrupt (sha256 mismatch)");
        const files = unpack(bytes.toString("utf8"));
        const workspace = join("workspaces", ctx.runId);
        // Start clean: an attempt cut short by a crash may have left part of the tree.
        await rm(platform.path(workspace), { recursive: true, force: true });
        for (const [path, content] of files) {
          await mkdir(dirname(platform.path(workspace, path)), { recursive: true });
          await writeFile(platform.path(workspace, path), content);
        }
        ctx.progress(`unpacked ${files.size} files (${source.bytes} bytes)`);
        ctx.log.info({ files: files.size, bytes: source.bytes }, "source unpacked");
        return { workspace, files: [...files.keys()] };
      },
      undo: async (_input, { workspace }, ctx) => {
        await rm(platform.path(workspace), { recursive: true, force: true });
        ctx.progress(`removed ${platform.show(workspace)}`);
      },
    })
    .action("build-image", {
      reads: ["app", "workspace", "files"],
      produces: { image: z.string(), imageFile: z.string() },
      // Builds fail for passing reasons (a registry hiccup): one retry, half a second later.
      retry: { maxAttempts: 2, initialDelayMs: 500 },
      timeoutMs: 60_000,
      run: async ({ app, workspace, files }, ctx) => {
        maybeFail(ctx);
        const layers: { file: string; sha256: string }[] = [];
        for (const [i, file] of files.entries()) {
          // The signal aborts the wait on cancel, timeout or shutdown.
          await delay(150, undefined, { signal: ctx.signal });
          layers.push({ file, sha256: sha256(await readFile(platform.path(workspace, file))) });
          ctx.progress(`layer ${i + 1}/${files.length}: ${file}`, { layer: i + 1, of: files.length });
        }
        // The idempotency key makes each build's image its own: undoing one build never deletes the
        // image another build activated, and a retry rewrites the same file instead of adding one.
        const digest = sha256(JSON.stringify({ layers, key: ctx.idempotencyKey }));
        const image = `${app}@sha256:${digest.slice(0, 12)}`;
        const imageFile = join("images", `${app}-${digest.slice(0, 12)}.img`);
        await writeJson(platform.path(imageFile), { image, layers, builtBy: ctx.idempotencyKey });
        ctx.log.info({ image }, "image built");
        return { image, imageFile };
      },
      undo: async (_input, { imageFile }, ctx) => {
        await rm(platform.path(imageFile), { force: true });
        ctx.progress(`removed ${platform.show(imageFile)}`);
      },
    })
    .action("create-config", {
      reads: ["app", "workspace"],
      produces: { configFile: z.string() },
      // No data flows from the build, but a failed build should leave no records behind.
      after: ["build-image"],
      run: async ({ app, workspace }, ctx) => {
        maybeFail(ctx);
        await delay(100, undefined, { signal: ctx.signal });
        const manifest = JSON.parse(await readFile(platform.path(workspace, "app.json"), "utf8")) as {
          env?: Record<string, string>;
        };
        const configFile = join("records", app, "configs", `${ctx.runId}.json`);
        await writeJson(platform.path(configFile), {
          app,
          env: manifest.env ?? {},
          createdBy: ctx.idempotencyKey,
        });
        ctx.progress(`config record ${platform.show(configFile)}`);
        return { configFile };
      },
      undo: async (_input, { configFile }, ctx) => {
        await rm(platform.path(configFile), { force: true });
        ctx.progress(`removed ${platform.show(configFile)}`);
      },
    })
    .action("create-version", {
      reads: ["app", "image", "configFile"],
      produces: { version: z.number().int().positive(), versionFile: z.string() },
      run: async ({ app, image, configFile }, ctx) => {
        maybeFail(ctx);
        await delay(100, undefined, { signal: ctx.signal });
        const dir = platform.path("records", app, "versions");
        await mkdir(dir, { recursive: true });
        let next = 1;
        for (const name of await readdir(dir)) {
          const match = /^v(\d+)\.json$/.exec(name);
          if (!match) continue;
          const record = await readJson<{ createdBy?: string }>(join(dir, name));
          const versionFile = join("records", app, "versions", name);
          // Re-run after a crash that followed the write: hand back the same version, not a new one.
          if (record?.createdBy === ctx.idempotencyKey) return { version: Number(match[1]), versionFile };
          next = Math.max(next, Number(match[1]) + 1);
        }
        const versionFile = join("records", app, "versions", `v${next}.json`);
        await writeJson(platform.path(versionFile), {
          version: next,
          image,
          config: configFile,
          createdBy: ctx.idempotencyKey,
        });
        ctx.progress(`version record v${next}`);
        ctx.log.info({ version: next, image }, "version created");
        return { version: next, versionFile };
      },
      undo: async (_input, { versionFile }, ctx) => {
        await rm(platform.path(versionFile), { force: true });
        ctx.progress(`removed ${platform.show(versionFile)}`);
      },
    })
    .action("activate", {
      reads: ["app", "version"],
      produces: { previous: z.number().int().nullable() },
      run: async ({ app, version }, ctx) => {
        maybeFail(ctx);
        const file = platform.path("records", app, "active.json");
        const current = await readJson<ActiveRecord>(file);
        // Already done by an attempt that crashed before its completion was recorded.
        if (current?.activatedBy === ctx.idempotencyKey) return { previous: current.previous };
        const previous = current?.version ?? null;
        await writeJson(file, {
          version,
          previous,
          activatedBy: ctx.idempotencyKey,
          at: new Date().toISOString(),
        });
        ctx.progress(`v${version} is live${previous === null ? "" : ` (was v${previous})`}`);
        ctx.log.info({ version, previous }, "version activated");
        return { previous };
      },
      undo: async ({ app, version }, { previous }, ctx) => {
        const file = platform.path("records", app, "active.json");
        const current = await readJson<ActiveRecord>(file);
        // Another version went live since (or this undo already ran): rolling back must not clobber it.
        if (current?.version !== version) return;
        if (previous === null) await rm(file, { force: true });
        else
          await writeJson(file, {
            version: previous,
            previous: null,
            activatedBy: ctx.idempotencyKey,
            at: new Date().toISOString(),
          });
        ctx.progress(previous === null ? "no version is live any more" : `v${previous} is live again`);
      },
    })
    .build();
}

// ---- progress and summary ----------------------------------------------------------------------

/** One line per event, for whoever watches this process; with nobody listening nothing is built or kept. */
function printEvent(event: RunEvent): void {
  const data = event.data ?? {};
  const text: Record<RunEvent["type"], () => string> = {
    "run:started": () => `started (saga ${event.saga} v${String(data.version)})`,
    "run:resumed": () => `resumed (${String(data.reason)})`,
    "run:waiting": () => "waiting",
    "run:completed": () => "completed",
    "run:compensating": () =>
      data.kind === "cancel"
        ? `cancelled (${String(data.reason)}): rolling back`
        : `"${String(data.action)}" failed: rolling back, last action first`,
    "run:compensated": () => "rolled back",
    "run:cancelled": () => "cancelled and rolled back",
    "run:needs_attention": () => `needs attention: ${String(data.error)}`,
    "run:failed": () => `"${String(data.action)}" failed: held for a retry`,
    "action:started": () =>
      data.recovered
        ? `running again after an interruption (attempt ${String(data.attempt)})`
        : `started (attempt ${String(data.attempt)})`,
    "action:waiting": () => "waiting",
    "action:progress": () => String(data.message),
    "action:completed": () => "completed",
    "action:failed": () =>
      typeof data.retryAt === "number"
        ? `failed: ${String(data.error)}; retrying in ${Math.max(0, data.retryAt - event.at)} ms`
        : `failed: ${String(data.error)}`,
    "undo:started": () => "undoing",
    "undo:completed": () => "undone",
    "undo:failed": () => `undo failed: ${String(data.error)}${data.final ? " (giving up)" : "; will retry"}`,
    "cleanup:started": () => "cleaning up after an attempt that did not complete",
    "cleanup:completed": () => "cleaned up",
    "cleanup:failed": () => `cleanup failed: ${String(data.error)}`,
    "signal:received": () => `signal "${String(data.signal)}" received`,
    "loop:iteration": () =>
      `iteration ${String(data.iteration)}${data.after ? ` (${String(data.after)})` : ""}`,
  };
  const who = event.runName ?? event.runId;
  const at = new Date(event.at);
  const clock = `${at.toTimeString().slice(0, 8)}.${String(at.getMilliseconds()).padStart(3, "0")}`;
  console.log(`  ${clock}  ${who}  ${(event.action ?? "").padEnd(15)} ${text[event.type]()}`);
}

/** How each action's output reads in the summary, and which output names the file it created. */
const ARTIFACTS: Record<
  (typeof ACTIONS)[number],
  { file?: string; label: (out: Record<string, unknown>, show: (p: unknown) => string) => string }
> = {
  "receive-source": {
    file: "workspace",
    label: (out, show) =>
      `workspace ${show(out.workspace)}/ (${Array.isArray(out.files) ? out.files.length : 0} files)`,
  },
  "build-image": {
    file: "imageFile",
    label: (out, show) => `image ${String(out.image)} at ${show(out.imageFile)}`,
  },
  "create-config": { file: "configFile", label: (out, show) => `config record ${show(out.configFile)}` },
  "create-version": {
    file: "versionFile",
    label: (out, show) => `version v${String(out.version)} at ${show(out.versionFile)}`,
  },
  activate: {
    label: (out) =>
      `v${String(out.version)} (${out.previous === null ? "nothing was live before" : `v${String(out.previous)} was live before`})`,
  },
};

/** What each action left on the platform, read back from the persisted steps and checked on disk. */
function describe(
  platform: Platform,
  action: (typeof ACTIONS)[number],
  step: StepRecord | undefined,
  values: Record<string, unknown>,
): string {
  if (!step) return `not run     ${action}`;
  const out = { ...values, ...step.output };
  const { file, label } = ARTIFACTS[action];
  const path = file !== undefined && typeof out[file] === "string" ? platform.path(out[file]) : undefined;
  const detail = label(out, (p) => (typeof p === "string" ? platform.show(p) : "?"));
  const [made, unmade] = action === "activate" ? ["activated", "rolled back"] : ["created", "removed"];
  switch (step.status) {
    case "completed":
      return `${made.padEnd(11)} ${detail}${path && !existsSync(path) ? "  (but it is missing on disk!)" : ""}`;
    case "undone":
      return `${unmade.padEnd(11)} ${detail}${path && existsSync(path) ? "  (but it is still on disk!)" : ""}`;
    case "failed":
      return `failed      ${action}: ${step.error?.message ?? "unknown error"}`;
    default:
      return `${step.status.padEnd(11)} ${action}`;
  }
}

async function summarize(
  executor: Executor,
  platform: Platform,
  result: RunOutcome,
  app: string,
): Promise<void> {
  const info = await executor.get(result.id);
  const steps = new Map((info?.steps ?? []).map((s) => [s.action, s]));
  const run = info?.run.runName ?? result.id;
  const took = info?.run.endedAt
    ? ` in ${((info.run.endedAt - info.run.createdAt) / 1000).toFixed(1)} s`
    : "";
  const outcome =
    result.status === "completed"
      ? "completed"
      : result.status === "compensated" && result.cause?.kind === "failure"
        ? `rolled back, because "${result.cause.action}" failed: ${result.cause.error.message}`
        : `${result.status}${result.error ? `: ${result.error.message}` : ""}`;
  console.log(`\nRun ${run} (id ${result.id}) ${outcome}${took}`);
  // Every value produced, undone steps included: the activation's summary names the version.
  const values: Record<string, unknown> = Object.assign({}, ...[...steps.values()].map((s) => s.output));
  for (const action of ACTIONS) console.log(`  ${describe(platform, action, steps.get(action), values)}`);
  const live = await readJson<ActiveRecord>(platform.path("records", app, "active.json"));
  console.log(`Live version of ${app}: ${live ? `v${live.version}` : "none"}`);
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let options: { app: string; failAt: string | undefined; dataDir: string; memory: boolean; help: boolean };
  try {
    const { values } = parseArgs({
      options: {
        app: { type: "string", default: "shop" },
        "fail-at": { type: "string" },
        "data-dir": { type: "string", default: ".slipway" },
        memory: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    options = {
      app: values.app,
      failAt: values["fail-at"] ?? (process.env.FAIL_AT || undefined),
      dataDir: values["data-dir"],
      memory: values.memory,
      help: values.help,
    };
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (options.failAt !== undefined && !(ACTIONS as readonly string[]).includes(options.failAt)) {
    console.error(`--fail-at: no action "${options.failAt}"; the actions are ${ACTIONS.join(", ")}`);
    return 2;
  }
  if (!/^[a-z0-9-]+$/.test(options.app)) {
    console.error(`--app: "${options.app}" must be lowercase letters, digits and dashes`);
    return 2;
  }

  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const platform = new Platform(join(dataDir, "platform"));
  const buildServer = buildServerSaga(platform, options.failAt);
  const storage: Storage = options.memory
    ? new MemoryStorage()
    : new SqliteStorage({ path: join(dataDir, "slipway.db") });
  // Log lines go to a file so they do not drown the progress lines; each carries the run name.
  const logFile = join(dataDir, "build-server.log");
  const logger = createLogger({}, pino.destination({ dest: logFile, sync: true }));

  // Opening recovers runs an earlier process left unfinished (Ctrl-C, kill -9): they continue here.
  const executor = await Executor.open({ storage, sagas: [buildServer], dataDir, logger });
  const stopListening = executor.on(printEvent);
  let interrupted = false;
  const onInterrupt = () => {
    // Ctrl-C may arrive twice (from the terminal and relayed by npm/tsx): close once.
    if (interrupted) return;
    interrupted = true;
    console.log("\nInterrupted: the run stays in the database; run the example again and it continues.");
    void executor.close().then(() => storage.close().then(() => process.exit(130)));
  };
  process.on("SIGINT", onInterrupt);

  try {
    const recovered = (
      await storage.listRuns({ sagas: [buildServer.name], statuses: ACTIVE_STATUSES })
    ).filter((record) => record.owner === executor.owner);
    if (recovered.length > 0)
      console.log(`Recovering ${recovered.length} unfinished run(s) left by an earlier process.`);

    const build = (await storage.listRuns({ sagas: [buildServer.name] })).length + 1;
    const runName = `${options.app}-build-${build}`;
    const id = executor.newRunId();
    // Stage the upload before starting, so the saga's input holds a reference that survives a crash.
    const source = await executor.stage(id, "source.tar", uploadedArchive(options.app, build));
    console.log(
      `Build ${runName}: ${options.memory ? "in memory" : `database ${relative(process.cwd(), join(dataDir, "slipway.db"))}`}` +
        `${options.failAt ? `, failing at "${options.failAt}"` : ""}`,
    );
    const handle = await executor.start(buildServer, { app: options.app, source }, { id, runName });

    for (const record of recovered)
      await summarize(executor, platform, await executor.result(record.id), options.app);
    const result = await handle.result();
    await summarize(executor, platform, result, options.app);

    const ours = (await readFile(logFile, "utf8"))
      .split("\n")
      .filter((line) => line.includes(`"runId":"${id}"`));
    console.log(
      `Logs: ${ours.length} lines of ${relative(process.cwd(), logFile)} carry "runName":"${runName}", e.g.`,
    );
    if (ours[0]) console.log(`  ${ours[0]}`);
    if (result.status === "completed" && !options.failAt)
      console.log("\nTo watch a rollback: FAIL_AT=activate npm run example:saga");
    return result.status === "completed" ? 0 : 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    stopListening();
    await executor.close();
    await storage.close();
  }
}

process.exitCode = await main();
