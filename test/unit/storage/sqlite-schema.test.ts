/** Fails when sql/sqlite/schema.sql no longer matches what the migrations produce. */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { sqliteSchemaSql } from "../../../src/storage/sqlite/migrations.js";

it("sql/sqlite/schema.sql matches the migrations", () => {
  const committed = readFileSync(new URL("../../../sql/sqlite/schema.sql", import.meta.url), "utf8");
  expect(
    committed,
    "sql/sqlite/schema.sql is stale: regenerate it with `npx tsx scripts/sqlite-schema.ts --write`",
  ).toBe(sqliteSchemaSql());
});
