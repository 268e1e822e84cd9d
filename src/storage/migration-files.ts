/** Numbered migrations in a folder of `NNNN_name.sql` files, read in order (the SQL backends' schemas). */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SlipwayError } from "../errors.js";

const MIGRATION_FILE = /^(\d+)_[\w-]+\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The numbered migrations in `dir`, in order; two files of one version are refused. */
export function readMigrationFiles(dir: URL): Migration[] {
  const folder = fileURLToPath(dir);
  const migrations: Migration[] = [];
  for (const name of readdirSync(folder)) {
    const match = MIGRATION_FILE.exec(name);
    if (!match) continue;
    migrations.push({ version: Number(match[1]), name, sql: readFileSync(new URL(name, dir), "utf8") });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new SlipwayError(
        "storage",
        `two migrations share version ${migrations[i]!.version} in ${folder}`,
      );
    }
  }
  return migrations;
}
