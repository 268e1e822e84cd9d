/**
 * Which runs service a command talks to: a server (`--server URL` or `SLIPWAY_SERVER`, with its
 * token), or this process hosting runs on the embedded database. Commands take the service and never
 * ask which one it is; refusals of either are reported here, the same way.
 */
import { readFileSync } from "node:fs";
import { SlipwayError } from "../errors.js";
import { HttpRuns, RemoteError } from "../http/client.js";
import { LocalRuns } from "../runs/local.js";
import type { RunService } from "../runs/service.js";
import { EXIT, type Io, UsageError } from "./command.js";
import { dbPath, type StateUse } from "./state.js";

/** The options of every command that works on runs. */
export const connectionOptions = {
  db: { type: "string" },
  server: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
} as const;

export interface Connection {
  db?: string | undefined;
  server?: string | undefined;
  token?: string | undefined;
  "token-file"?: string | undefined;
}

/**
 * The token in a file (`--token-file`): its text without the line break that ends it. Reading it
 * from a file keeps it out of the process list, where `--token` shows it to every user of the machine.
 */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(
      `cannot read the token file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const token = text.replace(/\r?\n$/, "");
  if (token.trim() === "" || /[\r\n]/.test(token))
    throw new UsageError(`the token file ${path} must hold the token on one line`);
  return token;
}

/**
 * The token a command was given: `--token`, `--token-file`, else `SLIPWAY_TOKEN`, else the file
 * `SLIPWAY_TOKEN_FILE` names; undefined when none.
 */
export function tokenOf(values: Pick<Connection, "token" | "token-file">): string | undefined {
  if (values.token !== undefined && values["token-file"] !== undefined)
    throw new UsageError("give --token or --token-file, not both");
  if (values.token !== undefined) return values.token;
  if (values["token-file"] !== undefined) return readTokenFile(values["token-file"]);
  const env = process.env.SLIPWAY_TOKEN;
  if (env !== undefined && env !== "") return env;
  const file = process.env.SLIPWAY_TOKEN_FILE;
  return file === undefined || file === "" ? undefined : readTokenFile(file);
}

/** The server named by `--server` or `SLIPWAY_SERVER`, if any. */
export function serverOf(values: Connection): string | undefined {
  const server = values.server ?? process.env.SLIPWAY_SERVER;
  return server === undefined || server === "" ? undefined : server;
}

/**
 * Opens the service the options name: the server's, or one hosting runs in this process on the
 * database found for `use` (a command that only reads never creates one).
 */
export async function connect(values: Connection, use: StateUse): Promise<RunService> {
  const server = serverOf(values);
  if (server === undefined)
    return LocalRuns.open({ db: dbPath(values.db, use), adopt: "asked", pollIntervalMs: 100 });
  const token = tokenOf(values);
  if (token === undefined || token === "")
    throw new UsageError(
      `a token is needed for ${server}: --token-file FILE, --token TOKEN, SLIPWAY_TOKEN or SLIPWAY_TOKEN_FILE`,
    );
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new UsageError(`--server wants a URL such as http://127.0.0.1:7420, got "${server}"`);
  }
  return new HttpRuns({ baseUrl: base.href, token });
}

/** Runs `act` with the service (see `connect`), then closes it; a refusal is printed and becomes the exit code. */
export async function withRuns(
  values: Connection,
  use: StateUse,
  io: Io,
  act: (runs: RunService) => Promise<number>,
): Promise<number> {
  let runs: RunService;
  try {
    runs = await connect(values, use);
  } catch (error) {
    return reportRefusal(io, error);
  }
  try {
    return await act(runs);
  } catch (error) {
    return reportRefusal(io, error);
  } finally {
    await runs.close();
  }
}

/**
 * Prints what the service refused as `slipway: <message>`, then its problems one a line. Exit 2 for
 * a request found invalid (a pipeline with problems, bad inputs), 1 for anything else it refused.
 * Anything that is not a refusal is rethrown.
 */
export function reportRefusal(io: Io, error: unknown): number {
  if (error instanceof RemoteError) {
    io.err(`slipway: ${error.message}\n${error.problems.map((p) => `${p}\n`).join("")}`);
    return error.status === 400 ? EXIT.usage : EXIT.failed;
  }
  if (error instanceof SlipwayError) {
    io.err(`slipway: ${error.message}\n`);
    return error.code === "definition" || error.code === "invalid_input" ? EXIT.usage : EXIT.failed;
  }
  throw error;
}
