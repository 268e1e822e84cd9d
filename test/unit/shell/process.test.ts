/** runShell: exit codes, outputs, logging and masking, streaming, and that no process of a job survives it. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Launcher } from "../../../src/shell/launcher.js";
import { processStartTime } from "../../../src/shell/orphans.js";
import { GroupSampler, groupMembers, readProcStat } from "../../../src/shell/proc.js";
import {
  masker,
  type ProcessIdentity,
  parseOutputs,
  runShell,
  type ShellOptions,
} from "../../../src/shell/process.js";
import { tempDir } from "../../helpers.js";
import { WAIT_MS, within } from "../../wait.js";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const groups: number[] = [];
/** Jobs are started by this launcher in the launcher's run of the suite, directly in the other. */
let launcher: Launcher | undefined;

afterEach(() => {
  // A failed test must not leave its job running.
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {}
  }
});

/** Runs a script in a fresh directory, remembering its group for cleanup. */
async function run(script: string, options: Partial<ShellOptions> = {}, limitMs = WAIT_MS) {
  const dir = options.cwd ?? tempDir();
  const logFile = options.logFile ?? join(dir, "logs", "attempt-1.log");
  let identity: ProcessIdentity | undefined;
  const result = await within(
    runShell({
      script,
      cwd: dir,
      env,
      launcher,
      ...options,
      logFile,
      onSpawn: (id) => {
        identity = id;
        groups.push(id.pgid);
        options.onSpawn?.(id);
      },
    }),
    `script ${JSON.stringify(script)}`,
    limitMs,
  );
  return { result, dir, log: readFileSync(logFile, "utf8"), identity: identity! };
}

/** The pid of a background process the script wrote to `file`. */
function pidIn(dir: string, file: string): number {
  return Number(readFileSync(join(dir, file), "utf8").trim());
}

function alive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z";
}

for (const mode of ["direct", "launcher"] as const)
  describe(`runShell (${mode})`, () => {
    beforeAll(() => {
      launcher = mode === "launcher" ? Launcher.start() : undefined;
    });
    afterAll(async () => {
      await launcher?.close();
      launcher = undefined;
    });

    it("starts the job from the launcher process, or from this one", async () => {
      const { log } = await run("echo parent $PPID");
      expect(log).toContain(`out parent ${mode === "launcher" ? launcher!.pid : process.pid}`);
    });

    it("reports exit codes, with -e and pipefail in effect", async () => {
      expect((await run("exit 3")).result).toMatchObject({ exitCode: 3, signal: null, outcome: "exited" });
      expect((await run("true")).result.exitCode).toBe(0);
      const stopped = await run("false\necho not reached");
      expect(stopped.result.exitCode).toBe(1);
      expect(stopped.log).not.toContain("not reached");
      expect((await run("false | true")).result.exitCode).toBe(1);
    });

    it("reads key=value and multi-line outputs from $SLIPWAY_OUTPUT", async () => {
      const dir = tempDir();
      const outputFile = join(dir, "out", "outputs.txt");
      writeFileSync(join(dir, "stale"), ""); // the file is truncated before start, not appended to
      const { result } = await run(
        [
          'echo "image=shop:1.0" >> "$SLIPWAY_OUTPUT"',
          'echo "query=a=b" >> "$SLIPWAY_OUTPUT"',
          "{ echo 'notes<<EOF'; echo 'line 1'; echo ''; echo 'line 3'; echo EOF; } >> \"$SLIPWAY_OUTPUT\"",
          'echo "empty=" >> "$SLIPWAY_OUTPUT"',
        ].join("\n"),
        { outputFile },
      );
      expect(result.outputs).toEqual({
        image: "shop:1.0",
        query: "a=b",
        notes: "line 1\n\nline 3",
        empty: "",
      });
    });

    it("rejects malformed outputs of a successful script, ignores them for a failed one", async () => {
      const dir = tempDir();
      const outputFile = join(dir, "outputs.txt");
      await expect(run("echo 'notes<<EOF' >> \"$SLIPWAY_OUTPUT\"", { outputFile })).rejects.toThrow(
        /invalid \$SLIPWAY_OUTPUT .*no closing "EOF" line/,
      );
      const failed = await run(
        "echo 'a=1' >> \"$SLIPWAY_OUTPUT\"; echo 'notes<<EOF' >> \"$SLIPWAY_OUTPUT\"; exit 2",
        {
          outputFile,
        },
      );
      expect(failed.result).toMatchObject({ exitCode: 2, outputs: { a: "1" } });
    });

    it("parses outputs with CRLF line ends and reports lines that are neither form", () => {
      expect(parseOutputs("a=1\r\nb<<X\r\nx\r\ny\r\nX\r\n")).toEqual({
        outputs: { a: "1", b: "x\ny" },
        problems: [],
      });
      expect(parseOutputs("a=1\nnonsense\n").problems).toEqual([
        "line 2: expected key=value or key<<DELIMITER",
      ]);
    });

    it("logs each line with a timestamp and its stream, secrets masked everywhere", async () => {
      const lines: string[] = [];
      const { result, log } = await run(
        "echo 'token hunter2-long and hunter2'\necho 'to stderr' >&2\necho 'pw: s3cr$t.'",
        {
          mask: ["hunter2", "hunter2-long", "", "s3cr$t."],
          onLine: (stream, line) => lines.push(`${stream} ${line}`),
        },
      );
      const entries = log.trimEnd().split("\n");
      expect(entries).toHaveLength(3);
      for (const entry of entries)
        expect(entry).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (out|err) /);
      expect(entries.map((e) => e.slice(25)).sort()).toEqual([
        "err to stderr",
        "out pw: ***",
        "out token *** and ***",
      ]);
      expect(log).not.toContain("hunter2");
      expect(lines.sort()).toEqual(["err to stderr", "out pw: ***", "out token *** and ***"]);
      expect(result.tail.sort()).toEqual(["pw: ***", "to stderr", "token *** and ***"]);
    });

    it("masks each line of a multi-line secret, and nothing for blank ones", () => {
      const mask = masker(["line-one\nline-two", " "]);
      expect(mask("a line-one b line-two c")).toBe("a *** b *** c");
    });

    it("streams lines while the script runs; handles CRLF, split UTF-8 and a last line without newline", async () => {
      const dir = tempDir();
      const seen: string[] = [];
      const { result } = await run(
        // Waits for a file that only the onLine callback creates: deadlocks unless lines arrive as written.
        "echo first\nwhile [ ! -e go ]; do sleep 0.01; done\nprintf '\\303'; sleep 0.05; printf '\\251t\\303\\251\\r\\nlast'",
        {
          cwd: dir,
          onLine: (_stream, line) => {
            seen.push(line);
            if (line === "first") writeFileSync(join(dir, "go"), "");
          },
        },
      );
      expect(result.exitCode).toBe(0);
      expect(seen).toEqual(["first", "été", "last"]);
    });

    it("keeps only the last lines in tail", async () => {
      const { result } = await run("for i in $(seq 1 50); do echo line $i; done");
      expect(result.tail).toHaveLength(20);
      expect(result.tail.at(-1)).toBe("line 50");
      expect(result.tail[0]).toBe("line 31");
    });

    it("kills background processes the script left behind, then removes the pid file", async () => {
      const dir = tempDir();
      const pidFile = join(dir, "run", "job.pid");
      let recorded: unknown;
      const { result, identity } = await run("sleep 300 &\necho $! > bg.pid\necho done", {
        cwd: dir,
        pidFile,
        onSpawn: () => {
          recorded = JSON.parse(readFileSync(pidFile, "utf8"));
        },
      });
      expect(result).toMatchObject({ exitCode: 0, outcome: "exited" });
      expect(recorded).toEqual(identity);
      expect(identity.startTime).toBe(processStartTime(identity.pgid) ?? identity.startTime);
      expect(identity.bootId).toMatch(/^[0-9a-f-]{36}$/);
      // It did not wait for the 300 s sleep: `run` gives up long before.
      expect(alive(pidIn(dir, "bg.pid"))).toBe(false);
      expect(groupMembers(identity.pgid)).toEqual([]);
      expect(existsSync(pidFile)).toBe(false);
    });

    it("on timeout, terminates the whole group, grandchildren included", async () => {
      const dir = tempDir();
      const { result, identity } = await run("sleep 300 &\necho $! > bg.pid\nsleep 300", {
        cwd: dir,
        timeoutMs: 300,
        graceMs: 120_000,
      });
      // sleep dies of TERM: no wait for the SIGKILL, 120 s later (`run` gives up long before).
      expect(result).toMatchObject({ outcome: "timeout", exitCode: null, signal: "SIGTERM" });
      expect(alive(pidIn(dir, "bg.pid"))).toBe(false);
      expect(groupMembers(identity.pgid)).toEqual([]);
    });

    it("on abort, lets a script that traps TERM exit cleanly and quickly", async () => {
      const controller = new AbortController();
      const { result, log } = await run(
        "trap 'echo cleaning up; exit 7' TERM\necho ready\nwhile true; do sleep 0.05; done",
        {
          signal: controller.signal,
          graceMs: 120_000,
          onLine: (_stream, line) => line === "ready" && controller.abort(),
        },
      );
      // Its own exit code, long before the SIGKILL would come (`run` gives up long before).
      expect(result).toMatchObject({ outcome: "aborted", exitCode: 7, signal: null });
      expect(log).toContain("out cleaning up");
    });

    it("escalates to SIGKILL after graceMs when the script ignores TERM", async () => {
      const controller = new AbortController();
      const { result, identity } = await run("trap '' TERM\necho ready\nwhile true; do sleep 0.05; done", {
        signal: controller.signal,
        graceMs: 200,
        onLine: (_stream, line) => line === "ready" && controller.abort(),
      });
      expect(result).toMatchObject({ outcome: "aborted", exitCode: null, signal: "SIGKILL" });
      expect(result.durationMs).toBeGreaterThanOrEqual(200);
      expect(groupMembers(identity.pgid)).toEqual([]);
    });

    it("does not start when already aborted", async () => {
      const dir = tempDir();
      const result = await runShell({
        script: "touch ran",
        cwd: dir,
        env,
        logFile: join(dir, "log"),
        signal: AbortSignal.abort(),
      });
      expect(result.outcome).toBe("aborted");
      expect(existsSync(join(dir, "ran"))).toBe(false);
    });

    // The shell runs a lone command in its own place (exec); followed by another, it forks the command as
    // its child: the sampler walks down from the group's leader to find it.
    it.each([
      ["the job's own process", ""],
      ["a child of the job's shell", "; echo done"],
    ])("samples the peak resident memory of the group: %s", async (_case, after) => {
      // 50 MB, filled so the pages are resident, held until the sampler has seen it (the test watches
      // the samples it takes), however late its timer fires on a busy machine.
      const dir = tempDir();
      const MB50 = 50 * 1024 * 1024;
      const watch = GroupSampler.prototype.watch;
      const spy = vi.spyOn(GroupSampler.prototype, "watch").mockImplementation(function (
        this: GroupSampler,
        pgid,
        onSample,
      ) {
        return watch.call(this, pgid, (rss) => {
          onSample(rss);
          if (rss > MB50) writeFileSync(join(dir, "go"), "");
        });
      });
      try {
        const hold = `const b = Buffer.alloc(${MB50}, 1); const fs = require("fs"); const t = setInterval(() => { if (fs.existsSync("go")) { clearInterval(t); console.log(b.length); } }, 10)`;
        const { result } = await run(`"${process.execPath}" -e '${hold}'${after}`, { cwd: dir });
        expect(result.exitCode).toBe(0);
        expect(result.peakRssBytes).toBeGreaterThan(MB50);
      } finally {
        spy.mockRestore();
      }
    });

    it("fails a job whose log cannot be written (a full disk) with that reason, and stops it", async () => {
      const dir = tempDir();
      // /dev/full fails every write with ENOSPC, as a full volume does.
      const started = Date.now();
      const failed = await runShell({
        script: "echo hello; sleep 30",
        cwd: dir,
        env,
        logFile: "/dev/full",
        pidFile: join(dir, "job.pid"),
        graceMs: 1_000,
      }).then(
        () => undefined,
        (error: unknown) => error as Error & { code?: string },
      );
      if (!failed) throw new Error("the job did not fail");
      expect(failed.message).toBe("the disk is full: cannot write the job's log /dev/full");
      expect(failed.code).toBe("disk_full");
      // Stopped at once, not after its sleep (every process of its group is gone: see the leak check).
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(existsSync(join(dir, "job.pid"))).toBe(false);
    });

    it("rejects a missing working directory by name", async () => {
      const dir = tempDir();
      const missing = join(dir, "nope");
      await expect(
        runShell({ script: "true", cwd: missing, env, logFile: join(dir, "log") }),
      ).rejects.toThrow(`working directory ${missing} does not exist`);
    });

    it("falls back to sh when there is no bash on PATH", async () => {
      const dir = tempDir();
      mkdirSync(join(dir, "empty"));
      const { result, log } = await run('echo "$0"', { env: { PATH: join(dir, "empty") } });
      expect(result.exitCode).toBe(0);
      expect(log).toMatch(/ out \/bin\/sh\n$/);
    });
  });

describe("the job launcher", () => {
  it("starts jobs directly once it is gone, and fails a job whose outcome it took with it", async () => {
    const gone = Launcher.start();
    try {
      const dir = tempDir();
      const controller = new AbortController();
      const running = runShell({
        script: "echo ready\nsleep 300",
        cwd: dir,
        env,
        logFile: join(dir, "running.log"),
        launcher: gone,
        signal: controller.signal,
        graceMs: 200,
        onSpawn: (id) => groups.push(id.pgid),
        onLine: (_stream, line) => line === "ready" && process.kill(gone.pid!, "SIGKILL"),
      });
      await expect(within(running, "the job whose launcher died", WAIT_MS)).rejects.toThrow(
        /the job launcher exited .*outcome is unknown/,
      );
      const { log } = await run("echo parent $PPID", { launcher: gone });
      expect(log).toContain(`out parent ${process.pid}`);
    } finally {
      await gone.close();
    }
  });
});
