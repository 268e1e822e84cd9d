/** `slipway prune --older-than`: removes runs that ended before then, with their logs, and keeps the rest. */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../helpers.js";
import { run } from "./cli.js";

describe("slipway prune", () => {
  it("removes ended runs older than the duration, with their logs", async () => {
    const dir = tempDir();
    const db = join(dir, ".slipway", "slipway.db");
    const file = join(dir, "pipe.yml");
    writeFileSync(file, "name: quick\njobs:\n  only:\n    run: echo done\n");
    const first = await run("run", file, "--db", db, "--json");
    expect(first.code, first.err).toBe(0);
    const id = (JSON.parse(first.out.split("\n")[0]!) as { id: string }).id;
    expect(existsSync(join(dir, ".slipway", "logs", id))).toBe(true);

    // Ended a moment ago: younger than a day, kept.
    expect(await run("prune", "--older-than", "1d", "--db", db)).toMatchObject({
      code: 0,
      out: "nothing to prune\n",
    });
    const pruned = await run("prune", "--older-than", "0ms", "--db", db, "--json");
    expect(pruned.code, pruned.err).toBe(0);
    expect(JSON.parse(pruned.out)).toEqual({ removed: [id] });
    expect(existsSync(join(dir, ".slipway", "logs", id))).toBe(false);
    expect((await run("ls", "--db", db)).out).toBe("no runs\n");
  });

  it("wants a duration it can read", async () => {
    const dir = tempDir();
    expect(await run("prune", "--db", join(dir, "x.db"))).toMatchObject({ code: 2 });
    const bad = await run("prune", "--older-than", "30 days", "--db", join(dir, "x.db"));
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--older-than: bad duration `30 days`");
  });
});
