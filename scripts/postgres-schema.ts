/**
 * Checks (default) or regenerates (--write) sql/postgres/schema.sql from the numbered migrations, on
 * a throwaway PostgreSQL cluster (or the server of SLIPWAY_TEST_PG_URL).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { postgresSchemaSql } from "../src/storage/postgres/migrations.js";
import { startPostgres } from "../src/testing/postgres.js";

const target = fileURLToPath(new URL("../sql/postgres/schema.sql", import.meta.url));
const server = await startPostgres();
if (!server) throw new Error("PostgreSQL is not installed (Debian's postgresql)");
try {
  const schema = await postgresSchemaSql(server.url);
  if (process.argv.includes("--write")) {
    writeFileSync(target, schema);
    console.log(`wrote ${target}`);
  } else {
    let committed = "";
    try {
      committed = readFileSync(target, "utf8");
    } catch {
      // missing counts as stale
    }
    if (committed !== schema) {
      console.error(`${target} is stale: run \`npx tsx scripts/postgres-schema.ts --write\``);
      process.exitCode = 1;
    } else console.log(`${target} is up to date`);
  }
} finally {
  await server.stop();
}
