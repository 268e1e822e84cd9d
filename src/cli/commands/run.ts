/**
 * `slipway run`: run a pipeline file in the foreground, durably (`slipway resume` continues it after a
 * crash); with `--server`, the run goes to that server and is followed from here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { RemoteError } from "../../http/client.js";
import type { SubmitResponse } from "../../runs/schemas.js";
import type { RunService } from "../../runs/service.js";
import { type Command, EXIT, type Io, parse, suggestion, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";
import { follow, Interrupts, viewMode } from "../foreground.js";

/** What `run` and `submit` both take. */
export const submitOptions = {
  ...connectionOptions,
  input: { type: "string", short: "i", multiple: true },
  tier: { type: "string", multiple: true },
  name: { type: "string" },
  key: { type: "string" },
  json: { type: "boolean" },
} as const;

export const run: Command = {
  name: "run",
  summary: "Run a pipeline file in the foreground (Ctrl-C cancels and undoes; twice leaves it resumable)",
  usage: [
    "slipway run FILE [--input NAME=VALUE]... [--tier NAME]... [--name RUN_NAME] [--key KEY] [--json]",
    "            [--db PATH | --server URL [--token-file F | --token T]]",
    "",
    "Prints the run id first, then the jobs as they go: a live table on a terminal, plain lines",
    "elsewhere, one JSON event per line with --json.",
    "--key makes the submission safe to repeat: the same key gives the same run.",
    "--name may be a pattern: {ticket}-{branch}-{attempt} fills in inputs (or event fields) and the",
    "next attempt among runs named the same but for it ({{ and }} are literal braces).",
    "Exit codes: 0 succeeded, 1 failed (undone where jobs have undo), 2 invalid usage or file,",
    "3 needs attention (an undo failed), 130 interrupted.",
    "With --server (or SLIPWAY_SERVER): the run goes to that server, as slipway submit --follow.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(args, submitOptions, 1);
    const file = positionals[0];
    if (file === undefined) throw new UsageError("run needs a pipeline file");
    const source = readSource(file, io);
    if (source === undefined) return EXIT.usage;
    return withRuns(values, "write", io, (runs) => submitFile(runs, file, source, values, true, io));
  },
};

/** Submits the file; with `follow`, follows the run to its end and returns its exit code. */
export async function submitFile(
  runs: RunService,
  file: string,
  source: string,
  values: { input?: string[]; tier?: string[]; name?: string; key?: string; json?: boolean },
  followIt: boolean,
  io: Io,
): Promise<number> {
  // The absolute path: jobs run in the file's directory (on the server's machine, for a server).
  const path = resolve(file);
  const request = {
    inputs: parseInputs(values.input ?? []),
    tiers: values.tier ?? [],
    name: values.name,
    key: values.key,
    follow: followIt,
  };
  // A run followed here is cancelled by Ctrl-C from before it is submitted.
  const interrupts = followIt ? new Interrupts(runs, io) : undefined;
  try {
    let submitted: SubmitResponse;
    try {
      submitted = await runs.submit({ file: path, source }, request);
    } catch (error) {
      throw asTyped(error, path, file);
    }
    const mode = viewMode(values.json);
    if (!interrupts) {
      io.out(values.json ? `${JSON.stringify(submitted)}\n` : `${submitted.id}\n`);
      return EXIT.ok;
    }
    const { id, name, pipeline, jobs } = submitted;
    interrupts.cancels(id);
    io.out(
      mode === "json"
        ? `${JSON.stringify({ id, name, pipeline })}\n`
        : `run ${id}${name ? ` (${name})` : ""}: ${pipeline}, ${jobs} jobs\n`,
    );
    return await follow(runs, [{ id, after: 0 }], mode, io, interrupts);
  } finally {
    interrupts?.uninstall();
  }
}

/** A refusal that names the file by its absolute path names it as it was typed (`bad.yml:5:5: ...`). */
function asTyped(error: unknown, path: string, typed: string): unknown {
  if (path === typed) return error;
  const shown = (text: string) => text.replaceAll(path, typed);
  if (error instanceof RemoteError)
    return new RemoteError(shown(error.message), error.status, error.code, error.problems.map(shown));
  if (error instanceof Error) error.message = shown(error.message);
  return error;
}

/** The text of a pipeline file; undefined (reported) when it can't be read. */
export function readSource(file: string, io: Io): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    io.err(
      `slipway: cannot read ${file}: ${code ?? (error as Error).message}${code === "ENOENT" ? nearFile(file) : ""}\n`,
    );
    return undefined;
  }
}

/** ` (did you mean "release.yml"?)` for a file of the same directory whose name is close. */
function nearFile(file: string): string {
  let names: string[];
  try {
    names = readdirSync(dirname(file) || ".");
  } catch {
    return "";
  }
  const near = suggestion(basename(file), names);
  return near === "" ? "" : near.replace(/"([^"]+)"/, (_, name: string) => `"${join(dirname(file), name)}"`);
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
