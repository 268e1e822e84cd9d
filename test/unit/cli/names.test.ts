/** `slipway run --name PATTERN`: story 1's `{ticket}-{branch}-{attempt}`, filled in and counted; a typo refused. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { tempDir } from "../../helpers.js";
import { run } from "./cli.js";

it("names runs from --name patterns, counting attempts, and refuses an unknown placeholder (exit 2)", async () => {
  const dir = tempDir();
  const db = join(dir, "slipway.db");
  const file = join(dir, "backport.yml");
  writeFileSync(
    file,
    "name: backport\ninputs:\n  ticket: { type: string }\n  branch: { type: string, default: c10s }\njobs:\n  build: { run: 'true' }\n",
  );
  const name = "{ticket}-{branch}-{attempt}";
  const first = await run("run", file, "--db", db, "-i", "ticket=RHEL-1234", "--name", name);
  expect(first.code).toBe(0);
  expect(first.out).toMatch(/^run \S+ \(RHEL-1234-c10s-1\): backport, 1 jobs$/m);
  const again = await run("run", file, "--db", db, "-i", "ticket=RHEL-1234", "--name", name);
  expect(again.out).toMatch(/\(RHEL-1234-c10s-2\)/);
  expect((await run("show", "RHEL-1234-c10s-2", "--db", db)).code).toBe(0);

  const typo = await run("run", file, "--db", db, "-i", "ticket=RHEL-1", "--name", "{tikcet}-{attempt}");
  expect(typo.code).toBe(2);
  expect(typo.err).toContain("unknown placeholder `{tikcet}` in the run name");
  expect(typo.err).toContain("did you mean `{ticket}`?");
});
