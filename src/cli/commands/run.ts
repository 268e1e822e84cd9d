/** `slipway run`: run a pipeline file in the foreground, durably: `slipway resume` continues it after a crash. */
import { readFileSync } from "node:fs";
import { type CompiledRun, compileRun } from "../../pipeline/compile.js";
import { PipelineError, PipelineInputError } from "../../pipeline/problems.js";
import { serverClient } from "../client.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { follow, viewMode } from "../foreground.js";
import { jobRuntime, openSession } from "../session.js";
import { dbOption, dbPath } from "../state.js";
import { parseInputs, submitFile, submitOptions } from "./submit.js";

export const run: Command = {
  name: "run",
  summary: "Run a pipeline file in the foreground (Ctrl-C cancels and undoes; twice leaves it resumable)",
  usage: [
    "slipway run FILE [--input NAME=VALUE]... [--tier NAME]... [--name RUN_NAME] [--json]",
    "            [--db PATH | --server URL [--token T]]",
    "",
    "Prints the run id first, then the jobs as they go: a live table on a terminal, plain lines",
    "elsewhere, one JSON event per line with --json.",
    "Exit codes: 0 succeeded, 1 failed (undone where jobs have undo), 2 invalid usage or file,",
    "3 needs attention (an undo failed), 130 interrupted.",
    "With --server (or SLIPWAY_SERVER): the run goes to that server, as slipway submit --follow.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(args, { ...dbOption, ...submitOptions }, 1);
    const file = positionals[0];
    if (file === undefined) throw new UsageError("run needs a pipeline file");
    const client = serverClient(values);
    if (client) return submitFile(client, file, values, true, io);
    const db = dbPath(values.db);
    const compiled = compileFile(
      file,
      { inputs: parseInputs(values.input ?? []), tiers: values.tier ?? [] },
      db,
      io,
    );
    if (!compiled) return EXIT.usage;

    const ids = new Set<string>();
    const session = await openSession(db, [compiled], ids);
    try {
      const id = session.executor.newExecutionId();
      ids.add(id);
      const name = values.name;
      const mode = viewMode(values.json);
      io.out(
        mode === "json"
          ? `${JSON.stringify({ id, name: name ?? null, pipeline: compiled.plan.pipeline.name })}\n`
          : `run ${id}${name ? ` (${name})` : ""}: ${compiled.plan.pipeline.name}, ${compiled.plan.steps.length} jobs\n`,
      );
      return await follow(session, [{ id, plan: compiled.plan }], mode, io, async () => {
        await session.executor.start(
          compiled.saga,
          { run: compiled.spec },
          name === undefined ? { id } : { id, runName: name },
        );
      });
    } finally {
      await session.close();
    }
  },
};

/** The text of a pipeline file; undefined (reported) when it can't be read. */
export function readSource(file: string, io: Io): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    io.err(
      `slipway: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`,
    );
    return undefined;
  }
}

/** Reads, parses and plans a pipeline file; reports problems (with file:line:col) and returns undefined on any. */
export function compileFile(
  file: string,
  request: Parameters<typeof compileRun>[2],
  db: string,
  io: Io,
): CompiledRun | undefined {
  const source = readSource(file, io);
  if (source === undefined) return undefined;
  try {
    return compileRun(file, source, request, jobRuntime(db));
  } catch (error) {
    if (error instanceof PipelineError || error instanceof PipelineInputError) {
      io.err(`${error.message}\n`);
      return undefined;
    }
    throw error;
  }
}
