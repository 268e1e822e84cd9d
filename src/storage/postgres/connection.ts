/**
 * The connection to a PostgreSQL database: a pool of connections, statements and transactions on
 * it, and what a failure is reported as (an unreachable database, a full disk). `?schema=name` in the
 * URL is Slipway's own: every connection's search path is that schema.
 */
import pg from "pg";
import { diskFullError, SlipwayError } from "../../errors.js";
import type { StorageHealth } from "../types.js";
import { quoteIdentifier } from "./migrations.js";

export type Client = pg.PoolClient;

/** bigint (int8) columns read as numbers: every one of them holds epoch ms, a seq or a revision. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/**
 * How long making a connection (or waiting for one of the pool's) may take before the statement fails
 * as the database unavailable: a server that is down refuses at once, one across a network that
 * dropped would otherwise keep a request hanging.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

export class Connection {
  readonly url: string;
  /** The schema of `?schema=`, if the URL names one. */
  readonly schema: string | undefined;
  /** How a single connection is made (the change listener makes its own). */
  readonly config: pg.ClientConfig;
  readonly #pool: pg.Pool;
  /** What the last statement found: the database reachable or not, and since when. */
  #health: StorageHealth = { reachable: true };

  constructor(url: string, maxConnections: number) {
    this.url = url;
    const { connectionString, schema } = splitSchema(url);
    this.schema = schema;
    this.config = {
      connectionString,
      types,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A connection whose peer vanished without closing it (a network drop) is found out.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // Startup options split at spaces unless escaped with a backslash.
      ...(schema !== undefined && {
        options: `-c search_path=${quoteIdentifier(schema).replace(/[\\ ]/g, (c) => `\\${c}`)}`,
      }),
    };
    this.#pool = new pg.Pool({ ...this.config, max: maxConnections });
    // An idle connection that drops (the server restarts) is replaced by the pool; without a listener
    // its error would be thrown as an uncaught exception.
    this.#pool.on("error", () => {});
  }

  /** The database it points at, without a password. */
  get where(): string {
    try {
      const url = new URL(this.url);
      url.password = "";
      return url.toString();
    } catch {
      return "postgres";
    }
  }

  /** Whether the last statement reached the database (see `Storage.health`). */
  health(): StorageHealth {
    return { ...this.#health };
  }

  end(): Promise<void> {
    return this.#pool.end();
  }

  /** Runs `work` in one transaction on one connection: committed if it resolves, rolled back if not. */
  async transaction<T>(work: (client: Client) => Promise<T>): Promise<T> {
    let client: Client;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.failure(error);
    }
    let broken = false;
    // A connection that breaks while checked out emits 'error' (on every later write too): without a
    // listener that would end the process. It is thrown away on release.
    const lost = () => {
      broken = true;
    };
    client.on("error", lost);
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      this.#reached();
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
      throw this.failure(error);
    } finally {
      client.removeListener("error", lost);
      client.release(broken);
    }
  }

  /** One statement, its rows as arrays in column order (the mappers of ../rows.ts read them so). */
  async arrays(text: string, values: unknown[]): Promise<unknown[][]> {
    try {
      const rows = (await this.#pool.query<unknown[]>({ text, values, rowMode: "array" })).rows;
      this.#reached();
      return rows;
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** One statement on a connection of the pool. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.#pool.query<R>(text, values);
      this.#reached();
      return result;
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * What a failed statement is reported as: the database unreachable (down, restarting, a dropped
   * connection) is a `storage` error saying so (the API answers 503), a full disk a `disk_full` one;
   * anything else as it was thrown.
   */
  failure(error: unknown): unknown {
    if (error instanceof SlipwayError) return error;
    const full = diskFullError(error, `the database ${this.where}`);
    if (full !== error) return full;
    if (!unreachable(error)) {
      this.#reached();
      return error;
    }
    const failure = new SlipwayError(
      "storage",
      `the database ${this.where} is unavailable: ${(error as Error).message || (error as { code?: string }).code} (retried until it is back)`,
      { cause: error },
    );
    if (this.#health.reachable)
      this.#health = { reachable: false, reason: failure.message, since: Date.now() };
    else this.#health.reason = failure.message;
    return failure;
  }

  /** A statement reached the database: it is reachable (again, since now, if it was not). */
  #reached(): void {
    if (!this.#health.reachable) this.#health = { reachable: true, since: Date.now() };
  }
}

/** Socket errors, and PostgreSQL's connection exceptions (08...) and shutdowns (57P01-57P03). */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ENOENT",
]);

/** Whether an error means the database could not be reached, rather than that a statement failed. */
function unreachable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === "string" &&
    (UNREACHABLE.has(code) || code.startsWith("08") || /^57P0[123]$/.test(code))
  )
    return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|connection error|timeout exceeded when trying to connect/i.test(message);
}

/** The URL without Slipway's own `schema` parameter (the driver would pass it on), and that schema. */
function splitSchema(url: string): { connectionString: string; schema: string | undefined } {
  const match = /[?&]schema=([^&]*)/.exec(url);
  if (!match) return { connectionString: url, schema: undefined };
  const rest = url.replace(/([?&])schema=[^&]*(&?)/, (_, lead: string, tail: string) => (tail ? lead : ""));
  return { connectionString: rest, schema: decodeURIComponent(match[1]!) };
}
