/** What every CLI command shares: its shape, strict argument parsing, exit codes, where output goes. */
import { parseArgs } from "node:util";
import { closest } from "../problems.js";

/** Where a command writes; injected so tests can call `main` without spawning a process. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** 0 succeeded; 1 failed; 2 invalid usage or file; 3 needs attention; 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, usage: 2, attention: 3, interrupted: 130 } as const;

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Shown by `slipway help <command>` and `slipway <command> --help`. */
  usage: string;
  run(args: string[], io: Io): Promise<number> | number;
}

/** A wrong command line: reported on stderr with a hint, exit code 2. */
export class UsageError extends Error {}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>["options"]>;
type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
>;

/** Strict parsing: an unknown option or a stray argument is a usage error, never silently ignored. */
export function parse<O extends Options>(args: string[], options: O, maxPositionals: number): Parsed<O> {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== undefined) {
      const known = Object.entries(options).flatMap(([name, option]) => [
        `--${name}`,
        ...(option.short ? [`-${option.short}`] : []),
      ]);
      throw new UsageError(`unknown option "${unknown}"${suggestion(unknown, known)}`);
    }
    // Other parseArgs errors already name the option and what is wrong with it.
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`);
  }
  return parsed;
}

/** ` (did you mean "x"?)` when one of `candidates` is close to `name`, else nothing. */
export function suggestion(name: string, candidates: Iterable<string>): string {
  const near = closest(name, candidates);
  return near === undefined ? "" : ` (did you mean "${near}"?)`;
}
