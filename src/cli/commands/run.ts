/** `slipway run`: run a pipeline file in the foreground, durably: `slipway resume` continues it after a crash. */
import { readFileSync } from "node:fs";
import { type CompiledRun, compileRun } from "../../pipeline/compile.js";
import { PipelineError, PipelineInputError } from "../../pipeline/problems.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { follow, viewMode } from "../foreground.js";
import { jobRuntime, openSession } from "../session.js";
import { dbOption, dbPath } from "../state.js";

export const run: Command = {
  name: "run",
  summary: "Run a pipeline file in the foreground (Ctrl-C cancels and undoes; twice leaves it resumable)",
  usage: [
    "slipway run FILE [--input NAME=VALUE]... [--tier NAME]... [--name RUN_NAME] [--json] [--db PATH]",
    "",
    "Prints the run id first, then the jobs as they go: a live table on a terminal, plain lines",
    "elsewhere, one JSON event per line with --json.",
    "Exit codes: 0 succeeded, 1 failed (undone where jobs have undo), 2 invalid usage or file,",
    "3 needs attention (an undo failed), 130 interrupted.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      {
        ...dbOption,
        input: { type: "string", short: "i", multiple: true },
        tier: { type: "string", multiple: true },
        name: { type: "string" },
        json: { type: "boolean" },
      },
      1,
    );
    const file = positionals[0];
    if (file === undefined) throw new UsageError("run needs a pipeline file");
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

/** Reads, parses and plans a pipeline file; reports problems (with file:line:col) and returns undefined on any. */
export function compileFile(
  file: string,
  request: Parameters<typeof compileRun>[2],
  db: string,
  io: Io,
): CompiledRun | undefined {
  let source: string;
  try {
    source = readFileSync(file, "utf8");
  } catch (error) {
    io.err(
      `slipway: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`,
    );
    return undefined;
  }
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

/** `--input tag=v1 --input multiarch=true`: values stay strings; the pipeline's input types decide. */
export function parseInputs(pairs: readonly string[]): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--input wants NAME=VALUE, got "${pair}"`);
    inputs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return inputs;
}
