/** Checks (default) or regenerates (--write) sql/sqlite/schema.sql from the numbered migrations. */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sqliteSchemaSql } from "../src/storage/sqlite/migrations.js";

const target = fileURLToPath(new URL("../sql/sqlite/schema.sql", import.meta.url));
const schema = sqliteSchemaSql();

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
    console.error(`${target} is stale: run \`npx tsx scripts/sqlite-schema.ts --write\``);
    process.exitCode = 1;
  } else {
    console.log(`${target} is up to date`);
  }
}
