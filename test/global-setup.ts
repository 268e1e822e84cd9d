/**
 * vitest's global setup: with SLIPWAY_TEST_STORAGE=postgres, one throwaway PostgreSQL cluster for the
 * whole run (or the server of SLIPWAY_TEST_PG_URL), announced to the test processes through
 * SLIPWAY_TEST_PG_URL; each test file then makes a database of its own (test/storage-backend.ts).
 */
import { startPostgres } from "../src/testing/postgres.js";

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.SLIPWAY_TEST_STORAGE !== "postgres" || process.env.SLIPWAY_TEST_PG_URL) return undefined;
  const server = await startPostgres();
  if (!server) throw new Error("SLIPWAY_TEST_STORAGE=postgres, but PostgreSQL is not installed");
  process.env.SLIPWAY_TEST_PG_URL = server.url;
  return () => server.stop();
}
