/**
 * A throwaway PostgreSQL cluster for tests and benchmarks: the installed server's binaries (Debian's
 * `postgresql`), a data directory under the system's temporary folder, reached only through a Unix
 * socket in that directory (no TCP port to collide with), stopped and removed afterwards.
 * `SLIPWAY_TEST_PG_URL` points at a server of one's own instead. Each test file makes its own
 * database (`freshDatabase`).
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

export interface PostgresServer {
  /** A connection string to the `postgres` database, as a superuser. */
  url: string;
  /** Stops the server abruptly (as a crash would), keeping its data; `up` starts it again. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/** The directory of `initdb` and `pg_ctl`: on PATH, or Debian's /usr/lib/postgresql/<version>/bin. */
export function postgresBinaries(): string | undefined {
  try {
    const onPath = execFileSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).trim();
    if (onPath) return join(onPath, "..");
  } catch {
    // not on PATH
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, "bin") : undefined;
}

/**
 * Starts a cluster of its own (or uses SLIPWAY_TEST_PG_URL); undefined when PostgreSQL is not
 * installed. `durable: false` (the default) turns fsync off: tests kill clients, not the server; a
 * benchmark keeps it on.
 */
export async function startPostgres(
  options: { durable?: boolean } = {},
): Promise<PostgresServer | undefined> {
  const given = process.env.SLIPWAY_TEST_PG_URL;
  if (given) {
    const unsupported = async () => {
      throw new Error("SLIPWAY_TEST_PG_URL names a server of one's own: it is not stopped or started here");
    };
    return { url: given, down: unsupported, up: unsupported, stop: async () => {} };
  }
  const bin = postgresBinaries();
  if (!bin) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "slipway-pg-"));
  // PostgreSQL refuses to run as root: as root, its own `postgres` user runs it.
  const asRoot = process.getuid?.() === 0;
  const as = (command: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bin, command), ...args])
      : run(join(bin, command), args);
  if (asRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o700);
  }
  const data = join(dir, "data");
  await as("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
  const settings = `-k ${dir} -c listen_addresses= -c max_connections=200${options.durable ? "" : " -c fsync=off"}`;
  const start = () => as("pg_ctl", ["-D", data, "-o", settings, "-l", join(dir, "log"), "-w", "start"]);
  await start();
  return {
    url: `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(dir)}`,
    down: async () => {
      await as("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    },
    up: async () => {
      await start();
    },
    stop: async () => {
      await as("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresUser(): { uid: number; gid: number } {
  const [uid, gid] = execFileSync("sh", ["-c", "id -u postgres; id -g postgres"], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map(Number);
  return { uid: uid!, gid: gid! };
}

/** Creates an empty database named after `label` (plus a random suffix) and returns its connection string. */
export async function freshDatabase(serverUrl: string, label: string): Promise<string> {
  const name = `${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 40)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
