#!/usr/bin/env node
/** The `slipway` command line: a table of commands, each parsing its own arguments; `main` returns the exit code. */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Command, EXIT, type Io, parse, suggestion, UsageError } from "./command.js";
import { cancel } from "./commands/cancel.js";
import { logs } from "./commands/logs.js";
import { prune } from "./commands/prune.js";
import { queue } from "./commands/queue.js";
import { resume, retry } from "./commands/resume.js";
import { run } from "./commands/run.js";
import { ls, show } from "./commands/runs.js";
import { serve } from "./commands/serve.js";
import { signal } from "./commands/signal.js";
import { submit } from "./commands/submit.js";
import { token } from "./commands/token.js";
import { triggers } from "./commands/triggers.js";
import { validate } from "./commands/validate.js";
import { workers } from "./commands/workers.js";

export { EXIT, type Io } from "./command.js";

const commands: Command[] = [
  {
    name: "help",
    summary: "Show the commands, or how to use one of them",
    usage: "slipway help [command]",
    run(args, io) {
      const { positionals } = parse(args, {}, 1);
      const name = positionals[0];
      if (name === undefined) {
        io.out(overview());
        return EXIT.ok;
      }
      const command = find(name);
      io.out(`${command.usage}\n\n${command.summary}.\n`);
      return EXIT.ok;
    },
  },
  {
    name: "version",
    summary: "Print the version of Slipway",
    usage: "slipway version\nslipway --version",
    run(args, io) {
      parse(args, {}, 0);
      io.out(`${packageVersion()}\n`);
      return EXIT.ok;
    },
  },
  run,
  validate,
  ls,
  show,
  logs,
  queue,
  triggers,
  workers,
  signal,
  cancel,
  retry,
  resume,
  prune,
  serve,
  submit,
  token,
];

/** Runs one command line (without `node` and the script path) and returns its exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h") return await find("help").run(rest, io);
    if (first === "--version" || first === "-v") return await find("version").run(rest, io);
    if (first.startsWith("-")) throw new UsageError(`unknown option "${first}"`);
    const command = find(first);
    // `--help` anywhere after a command shows that command's help rather than running it.
    if (rest.includes("--help") || rest.includes("-h")) return await find("help").run([command.name], io);
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`slipway: ${error.message}\nRun "slipway help" for the list of commands.\n`);
      return EXIT.usage;
    }
    io.err(`slipway: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
}

function find(name: string): Command {
  const command = commands.find((c) => c.name === name);
  if (!command)
    throw new UsageError(
      `unknown command "${name}"${suggestion(
        name,
        commands.map((c) => c.name),
      )}`,
    );
  return command;
}

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    `slipway ${packageVersion()}: durable sagas for build and deploy pipelines`,
    "",
    "Usage: slipway <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    "  -h, --help     Show help (also after a command: slipway <command> --help)",
    "  -v, --version  Print the version",
    "",
  ].join("\n");
}

/** Read at run time so the version printed is the one installed, from src/cli (tsx) or dist/cli alike. */
function packageVersion(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  const version = (JSON.parse(text) as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

/**
 * Once a reader of our output goes away (`slipway run --json | head`), what we print is dropped: the
 * command itself goes on, so a run is never abandoned halfway because nobody reads its progress.
 */
let stdoutClosed = false;
const processIo: Io = {
  out: (text) => {
    if (!stdoutClosed) process.stdout.write(text);
  },
  err: (text) => process.stderr.write(text),
};

/** True when this file is the program being run (also through npm's bin symlink), not an import. */
function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    stdoutClosed = true;
  });
  process.exitCode = await main(process.argv.slice(2));
}
