/**
 * Where the CLI finds its state: the nearest `.slipway/` up from the current directory (as git finds
 * its repository), or `--db`/`SLIPWAY_DB`; a command that only reads never creates a database; a URL
 * is refused. And mistyped commands, options and files get a suggestion.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dbPath } from "../../../src/cli/state.js";
import { tempDir } from "../../helpers.js";
import { run } from "./cli.js";

const saved = process.env.SLIPWAY_DB;
afterEach(() => {
  if (saved === undefined) delete process.env.SLIPWAY_DB;
  else process.env.SLIPWAY_DB = saved;
});

describe("where the state is", () => {
  it("is the nearest .slipway/ from the current directory up", () => {
    delete process.env.SLIPWAY_DB;
    const root = tempDir();
    const deep = join(root, "a", "b");
    mkdirSync(deep, { recursive: true });
    mkdirSync(join(root, ".slipway"));
    writeFileSync(join(root, ".slipway", "slipway.db"), "");
    expect(dbPath(undefined, "read", deep)).toBe(join(root, ".slipway", "slipway.db"));
    expect(dbPath(undefined, "write", deep)).toBe(join(root, ".slipway", "slipway.db"));
  });

  it("is created in the current directory by a command that writes, when there is none", () => {
    delete process.env.SLIPWAY_DB;
    const root = tempDir();
    expect(dbPath(undefined, "write", root)).toBe(join(root, ".slipway", "slipway.db"));
    expect(() => dbPath(undefined, "read", root)).toThrow(
      `looked for .slipway/slipway.db in ${root} and every directory above it`,
    );
  });

  it("is --db or SLIPWAY_DB when given: a path, or a PostgreSQL URL; another URL is refused", () => {
    const root = tempDir();
    process.env.SLIPWAY_DB = join(root, "env.db");
    expect(dbPath(undefined, "write", root)).toBe(join(root, "env.db"));
    expect(dbPath("flag.db", "write", root)).toBe(join(root, "flag.db"));
    process.env.SLIPWAY_DB = "postgres://ci@db.internal/slipway";
    expect(dbPath(undefined, "read", root)).toBe("postgres://ci@db.internal/slipway");
    expect(dbPath("postgresql://db/slipway", "write", root)).toBe("postgresql://db/slipway");
    process.env.SLIPWAY_DB = "mysql://ci@db.internal/slipway";
    expect(() => dbPath(undefined, "write", root)).toThrow(
      /SLIPWAY_DB is mysql:\/\/\.\.\.: give a SQLite file's path or a postgres:\/\/ or postgresql:\/\/ URL/,
    );
    expect(() => dbPath("sqlite://x.db", "read", root)).toThrow(/--db is sqlite:\/\//);
  });

  it("is never created by a command that only reads, which says where it looked", async () => {
    const root = tempDir();
    const db = join(root, "typo", "x.db");
    for (const argv of [
      ["ls"],
      ["show", "r1"],
      ["queue"],
      ["logs", "r1"],
      ["cancel", "r1"],
      ["signal", "r1", "go"],
    ]) {
      const result = await run(...argv, "--db", db);
      expect(result.code, argv.join(" ")).toBe(1);
      expect(result.err).toContain(`no Slipway database at ${db}`);
    }
    expect(existsSync(join(root, "typo"))).toBe(false);
    process.env.SLIPWAY_DB = "mysql://ci@db.internal/slipway";
    const refused = await run("ls");
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("give a SQLite file's path or a postgres://");
    expect(existsSync("mysql:")).toBe(false);
  });
});

describe("suggestions", () => {
  it.each([
    [["lss"], 'unknown command "lss" (did you mean "ls"?)'],
    [["submitt", "x.yml"], '(did you mean "submit"?)'],
    [["ls", "--jsn"], 'unknown option "--jsn" (did you mean "--json"?)'],
    [["logs", "r1", "--folow"], '(did you mean "--follow"?)'],
  ])("%j says what was meant", async (argv, message) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.err).toContain(message);
  });

  it("names a pipeline file of the same directory for a misspelled one", async () => {
    const root = tempDir();
    writeFileSync(join(root, "release.yml"), "name: release\njobs:\n  a:\n    run: true\n");
    const result = await run("run", join(root, "relase.yml"), "--db", join(root, "s.db"));
    expect(result.code).toBe(2);
    expect(result.err).toContain(`cannot read ${join(root, "relase.yml")}: ENOENT`);
    expect(result.err).toContain(`(did you mean "${join(root, "release.yml")}"?)`);
  });
});
