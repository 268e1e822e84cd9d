/** The runs service's shared cases, in-process: the service a foreground `slipway run` hosts. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalRuns } from "../../../src/runs/local.js";
import { followerFile } from "../../../src/shell/run-directory.js";
import { eventually, tempDir } from "../../helpers.js";
import { runServiceCases } from "./cases.js";

runServiceCases({
  name: "in-process",
  open: (db) => LocalRuns.open({ db, adopt: "asked", pollIntervalMs: 50 }),
});

describe("the follower mark of a run hosted here", () => {
  it("is written once the run parks, owned by nobody, not for every run submitted; and removed at its end", async () => {
    const dir = tempDir();
    const runs = await LocalRuns.open({ db: join(dir, "slipway.db"), adopt: "all", pollIntervalMs: 50 });
    try {
      const file = (name: string, source: string) => {
        writeFileSync(join(dir, name), source);
        return { file: join(dir, name), source };
      };
      // A run that never waits has its owner in storage to say who runs it: no file is written for it.
      const quick = await runs.submit(
        file("quick.yml", "name: quick\njobs:\n  only:\n    run: echo quick\n"),
      );
      expect(existsSync(followerFile(dir, quick.id))).toBe(false);
      await eventually(async () => (await runs.show(quick.id)).status === "completed", "the quick run");
      expect(existsSync(followerFile(dir, quick.id))).toBe(false);

      const gated = await runs.submit(
        file(
          "gated.yml",
          "name: gated\njobs:\n  approve:\n    wait: { signal: go }\n  ship:\n    needs: [approve]\n    run: echo shipped\n",
        ),
      );
      const mark = followerFile(dir, gated.id);
      await eventually(() => existsSync(mark), "the mark of the waiting run");
      expect(JSON.parse(readFileSync(mark, "utf8"))).toMatchObject({ pid: process.pid });
      await runs.signal(gated.id, "go");
      await eventually(async () => (await runs.show(gated.id)).status === "completed", "the gated run");
      await eventually(() => !existsSync(mark), "the mark removed");
    } finally {
      await runs.close();
    }
  });
});

describe("a run submitted to be followed", () => {
  it("keeps its live events for the follower who comes after it started, a quick job's lines included", async () => {
    const dir = tempDir();
    const runs = await LocalRuns.open({ db: join(dir, "slipway.db"), adopt: "asked", pollIntervalMs: 50 });
    try {
      const source = "name: quick\njobs:\n  only:\n    run: echo first line\n";
      writeFileSync(join(dir, "quick.yml"), source);
      const what = { file: join(dir, "quick.yml"), source };
      const messages = async (id: string) => {
        const seen: unknown[] = [];
        for await (const event of await runs.events(id))
          if (event.type === "action:progress") seen.push(event.data?.message);
        return seen;
      };
      // Followed only once the run has ended, as a follower slowed by a busy machine would be.
      const followed = await runs.submit(what, { follow: true });
      await eventually(async () => (await runs.show(followed.id)).status === "completed", "the run to end");
      expect(await messages(followed.id)).toContain("first line");
      // Without `follow`, what was told live before anyone listened is gone (it is in the job's log).
      const unfollowed = await runs.submit(what);
      await eventually(async () => (await runs.show(unfollowed.id)).status === "completed", "the run to end");
      expect(await messages(unfollowed.id)).not.toContain("first line");
    } finally {
      await runs.close();
    }
  });
});
