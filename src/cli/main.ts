#!/usr/bin/env node
/** The `slipway` command line: a table of commands, each parsing its own arguments; `main` returns the exit code. */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** Where a command writes; injected so tests can call `main` without spawning a process. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** Exit codes: 0 success, 1 the command ran and failed, 2 the command line itself is wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Shown by `slipway help <command>` and `slipway <command> --help`. */
  usage: string;
  run(args: string[], io: Io): Promise<number> | number;
}

/** A wrong command line: reported on stderr with a hint, exit code 2. */
class UsageError extends Error {}

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
  if (!command) throw new UsageError(`unknown command "${name}"`);
  return command;
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

/** Strict parsing: an unknown option or a stray argument is a usage error, never silently ignored. */
function parse<O extends Options>(args: string[], options: O, maxPositionals: number) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
  >;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs throws TypeErrors whose messages already name the offending option.
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`);
  }
  return parsed;
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

const processIo: Io = {
  out: (text) => process.stdout.write(text),
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

if (invokedDirectly()) process.exitCode = await main(process.argv.slice(2));
