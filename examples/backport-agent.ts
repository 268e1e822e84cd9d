/**
 * Story 1 as a library user writes it: the backport agent of examples/backport.yml, in TypeScript.
 * It edits the patch, submits a build, waits for the result without holding anything, reads the
 * failure, edits again — until the build passes or ten attempts — then opens the merge request once.
 *
 *   npx tsx examples/backport-agent.ts                  # the first build passes
 *   npx tsx examples/backport-agent.ts --fail-first 3   # three failed builds, then the MR
 *   npx tsx examples/backport-agent.ts --fail-first 12  # gives up after 10 attempts, undoing them
 *
 * The build service and the forge are fakes kept in this process (a real agent would call Koji and
 * GitLab); the run is kept in a SQLite file under .slipway/ of the current directory.
 */
import { mkdirSync } from "node:fs";
import { Executor, SqliteStorage, saga, z } from "slipway";

const failFirst = Number(process.argv[process.argv.indexOf("--fail-first") + 1] ?? 0) || 0;

/** A build service that fails the first `failFirst` builds, each with a log saying why. */
const builds = new Map<string, { patch: string; readyAt: number; passed: boolean; log: string }>();
const buildService = {
  /** Submitting twice with the same key (an attempt re-run after a crash) returns the same build. */
  submit(patch: string, key: string): string {
    if (!builds.has(key)) {
      const failing = builds.size < failFirst;
      const log = failing ? `error: hunk ${builds.size + 1} of ${patch} does not apply` : "ok";
      builds.set(key, { patch, readyAt: Date.now() + 300, passed: !failing, log });
    }
    return key;
  },
  status(id: string) {
    const build = builds.get(id)!;
    return Date.now() < build.readyAt ? undefined : { passed: build.passed, log: build.log };
  },
  cancel(id: string) {
    console.log(`  build service: build of ${builds.get(id)?.patch} cancelled`);
  },
};

const result = z.object({ passed: z.boolean(), log: z.string() });

const backport = saga("backport", {
  version: 1,
  input: { ticket: z.string(), pkg: z.string(), branch: z.string() },
})
  .action("prepare", {
    reads: ["pkg", "branch"],
    output: z.string(),
    run: ({ pkg, branch }) => `${pkg}-${branch}-backport`,
  })
  .loop("attempts", {
    max: 10,
    body: (attempt) =>
      attempt
        .action("fix", {
          // The previous attempt's build log feeds this fix.
          reads: ["prepare", "iteration", "previous"],
          output: z.string(),
          run: ({ prepare, iteration, previous }) => {
            const log = (previous?.build as { log?: string } | undefined)?.log;
            console.log(`attempt ${iteration}: editing the patch${log ? ` after "${log}"` : ""}`);
            return `${prepare}.v${iteration}.patch`;
          },
        })
        .action("submit", {
          reads: ["fix"],
          output: z.string(),
          run: ({ fix }, ctx) => buildService.submit(fix, ctx.idempotencyKey),
          undo: (_input, id) => buildService.cancel(id),
        })
        // Hours in real life: the run holds no memory slot between checks.
        .poll("build", {
          reads: ["submit"],
          output: result,
          everyMs: 100,
          check: ({ submit }) => {
            const status = buildService.status(submit);
            return status ? { done: true, output: status } : { done: false, message: "building" };
          },
        }),
    until: ({ build }) => build.passed || `last build failed: ${build.log}`,
  })
  .action("open-mr", {
    reads: ["ticket", "branch", "attempts"],
    output: z.string(),
    run: ({ ticket, branch, attempts }) => {
      console.log(`opening the merge request for ${ticket} on ${branch} with ${attempts.fix}`);
      return `${ticket}-${branch}`;
    },
  })
  .build();

mkdirSync(".slipway", { recursive: true });
const storage = new SqliteStorage({ path: ".slipway/backport-agent.db" });
const executor = await Executor.open({ storage, sagas: [backport] });
const run = await executor.start(
  backport,
  { ticket: "RHEL-1234", pkg: "podman", branch: "c10s" },
  { runName: `RHEL-1234-c10s-${Date.now()}` },
);
const outcome = await run.result();
const steps = (await executor.get(run.id))!.steps;
const tried = steps.filter((s) => s.action.endsWith(".build") && s.status !== "running").length;
console.log(
  outcome.status === "completed"
    ? `done after ${tried} attempt${tried === 1 ? "" : "s"}: merge request ${outcome.output["open-mr"]}`
    : `${outcome.status}: ${outcome.cause?.kind === "failure" ? outcome.cause.error.message : outcome.cause?.kind}`,
);
await executor.close();
await storage.close();
