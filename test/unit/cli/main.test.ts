/** The `slipway` command line: version, help, and exit code 2 with a message on stderr for what it does not know. */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { run } from "./cli.js";

const { version } = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

describe("slipway command line", () => {
  it.each([["--version"], ["-v"], ["version"]])("%s prints the package version", async (flag) => {
    expect(await run(flag)).toEqual({ code: 0, out: `${version}\n`, err: "" });
  });

  it.each([[], ["help"], ["--help"], ["-h"]])("%s lists the commands", async (...argv: string[]) => {
    const { code, out, err } = await run(...argv);
    expect(code).toBe(0);
    expect(err).toBe("");
    expect(out).toContain("Usage: slipway <command>");
    expect(out).toMatch(/^ {2}version +Print the version/m);
  });

  it("shows one command's help with `help <command>` and `<command> --help`", async () => {
    const byHelp = await run("help", "version");
    expect(byHelp.code).toBe(0);
    expect(byHelp.out).toContain("slipway --version");
    expect(await run("version", "--help")).toEqual(byHelp);
  });

  it.each([
    [["deploy"], 'unknown command "deploy"'],
    [["--frobnicate"], 'unknown option "--frobnicate"'],
    [["help", "deploy"], 'unknown command "deploy"'],
    [["version", "extra"], 'unexpected argument "extra"'],
    [["version", "--frobnicate"], "--frobnicate"],
  ])("%j is a usage error: exit 2, message on stderr", async (argv, message) => {
    const { code, out, err } = await run(...argv);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toContain(message);
    expect(err).toContain('Run "slipway help"');
  });

  it("runs as the built bin: shebang, version, exit code", async () => {
    const bin = fileURLToPath(new URL("../../../dist/cli/main.js", import.meta.url));
    expect(existsSync(bin), "dist/cli/main.js is missing: run npm run build first").toBe(true);
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, [bin, "--version"], {
      timeout: 10_000,
    });
    expect(stdout).toBe(`${version}\n`);
    const failed = await promisify(execFile)(process.execPath, [bin, "nope"], {
      timeout: 10_000,
    }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain('unknown command "nope"');
  });
});
