/** What every CLI command shares: its shape, strict argument parsing, exit codes, where output goes. */
import { parseArgs } from "node:util";

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
    // parseArgs throws TypeErrors whose messages already name the offending option.
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`);
  }
  return parsed;
}
