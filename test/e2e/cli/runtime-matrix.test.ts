/** A matrix decided at run time from an earlier job's output, with the real `slipway run`, `show` and `logs`. */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { describe, expect, it } from "vitest";
import { eventually } from "../../wait.js";
import { Project, processesWith, runId, uniqueSleep } from "./harness.js";

describe("a matrix decided at run time", () => {
  it("runs one leg per item of an earlier job's output; the job that needs it reads the legs' outputs merged", async () => {
    const project = new Project();
    project.tool(
      "plan",
      `echo plan >> trace
echo 'packages=["libfoo","libbar","libbaz"]' >> "$SLIPWAY_OUTPUT"`,
    );
    project.write(
      "pipe.yml",
      `name: backports
jobs:
  plan:
    run: ./plan
  build:
    needs: [plan]
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    env:
      PACKAGE: \${{ matrix.value }}
    run: |
      echo "building $PACKAGE"
      echo "build $PACKAGE as $SLIPWAY_STEP" >> trace
      echo "rpm_\${{ matrix.value }}=\${{ matrix.value }}-1.0.rpm" >> "$SLIPWAY_OUTPUT"
  test:
    needs: [plan]
    matrix:
      package: \${{ fromJSON(needs.plan.outputs.packages) }}
      arch: [x86_64, aarch64]
      exclude:
        - { package: libbaz, arch: aarch64 }
    run: echo "test \${{ matrix.package }} on $MATRIX_ARCH" >> trace
  docs:
    needs: [plan]
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    if: \${{ matrix.value != 'libbaz' }}
    run: echo "docs \${{ matrix.value }}" >> trace
  publish:
    needs: [build, test]
    run: echo "publish \${{ needs.build.outputs.rpm_libfoo }} \${{ needs.build.outputs.rpm_libbar }}" >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    expect(trace[0]).toBe("plan");
    expect(trace.filter((l) => l.startsWith("build")).sort()).toEqual([
      "build libbar as build#2.build",
      "build libbaz as build#3.build",
      "build libfoo as build#1.build",
    ]);
    expect(trace.filter((l) => l.startsWith("docs")).sort()).toEqual(["docs libbar", "docs libfoo"]);
    expect(trace.filter((l) => l.startsWith("test")).sort()).toEqual([
      "test libbar on aarch64",
      "test libbar on x86_64",
      "test libbaz on x86_64",
      "test libfoo on aarch64",
      "test libfoo on x86_64",
    ]);
    expect(trace.at(-1)).toBe("publish libfoo-1.0.rpm libbar-1.0.rpm");

    const id = runId(result.stdout);
    const shown = await project.show(id);
    expect(shown.steps.map((s) => `${s.job} ${s.status}`).sort()).toEqual(
      [
        "plan completed",
        "build completed",
        "build#1.build completed",
        "build#2.build completed",
        "build#3.build completed",
        "test completed",
        "docs completed",
        "docs#1.docs completed",
        "docs#2.docs completed",
        "docs#3.docs completed",
        ...[1, 2, 3, 4, 5].map((i) => `test#${i}.test completed`),
        "publish completed",
      ].sort(),
    );
    // The leg whose `if:` is false was skipped, like a leg of a matrix written out.
    const skipped = shown.steps.find((s) => s.job === "docs#3.docs")!;
    expect(skipped.output?.docs).toMatchObject({
      status: "skipped",
      reason: "if: ${{ matrix.value != 'libbaz' }} is false",
    });

    // `show` lists each leg under its job, with its values, and the job with its count of legs.
    const text = await project.run(["show", id]);
    expect(text.stdout).toMatch(/^ {2}leg 1 \(libfoo\).*\n {4}build\s+completed/m);
    expect(text.stdout).toMatch(/^ {2}leg 3 \(libbaz\).*\n {4}docs\s+skipped .*is false/m);
    expect(text.stdout).toMatch(/^ {2}leg 5 \(libbaz, x86_64\).*\n {4}test\s+completed/m);
    expect(text.stdout).toMatch(/^build\s+completed .* 3 legs$/m);
    // `logs RUN build` is every leg's output.
    const logs = await project.run(["logs", id, "build"]);
    expect(logs.stdout, logs.stderr).toMatch(
      /^==> build#1\.build \(attempt 1\) <==\n.* out building libfoo$/m,
    );
    expect(logs.stdout).toMatch(/^==> build#2\.build \(attempt 1\) <==\n.* out building libbar$/m);
    expect(logs.stdout).not.toContain("test#");
  });

  it("past MAX_MATRIX_LEGS the job fails with the limit's message and the run undoes what completed", async () => {
    const project = new Project();
    project.tool(
      "plan",
      `echo plan >> trace
printf 'packages=[' >> "$SLIPWAY_OUTPUT"
for i in $(seq 1 257); do printf '"p%s",' "$i"; done | sed 's/,$//' >> "$SLIPWAY_OUTPUT"
echo ']' >> "$SLIPWAY_OUTPUT"`,
    );
    project.write(
      "pipe.yml",
      `name: too-many
jobs:
  plan:
    run: ./plan
    undo: echo "undo plan" >> trace
  build:
    needs: [plan]
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    run: echo "build \${{ matrix.value }}" >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code).toBe(1);
    const message =
      'job "build": its matrix makes 257 legs, over the limit of 256 legs per job (MAX_MATRIX_LEGS, a fixed limit: see Limits in docs/pipelines.md)';
    expect(result.stdout + result.stderr).toContain(message);
    expect(project.trace()).toEqual(["plan", "undo plan"]);
    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("compensated");
    expect(shown.cause).toMatchObject({ kind: "failure", action: "build", error: { message } });
  });

  it("a leg that fails undoes the legs that completed, and the jobs before them, dependents first", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `name: one-fails
jobs:
  plan:
    run: echo 'packages=[{"name":"libfoo"},{"name":"libbar"}]' >> "$SLIPWAY_OUTPUT"
    undo: echo "undo plan" >> trace
  build:
    needs: [plan]
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    run: |
      if [ "\${{ matrix.name }}" = libbar ]; then
        until grep -q "build libfoo" trace 2>/dev/null; do sleep 0.05; done
        exit 3
      fi
      echo "build \${{ matrix.name }}" >> trace
    undo: echo "undo \${{ matrix.name }}" >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code).toBe(1);
    expect(project.trace()).toEqual(["build libfoo", "undo libfoo", "undo plan"]);
    expect(result.stdout).toMatch(/build#2\.build \(libbar\): failed: failed \(exit 3\)/);
  });

  it("after kill -9 in the middle of a leg, resume runs that leg again, not the completed ones, with the same legs", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    // The first attempt of libbar's leg hangs; the one after the crash finds its marker and goes on.
    project.tool(
      "build",
      `echo "build $1" >> trace
if [ "$1" = libbar ] && [ ! -e build.once ]; then touch build.once; sleep ${sleep} & wait; fi
echo "rpm_$1=$1.rpm" >> "$SLIPWAY_OUTPUT"`,
    );
    project.write(
      "pipe.yml",
      `name: crash
jobs:
  plan:
    run: echo plan >> trace; echo 'packages=["libfoo","libbar"]' >> "$SLIPWAY_OUTPUT"
  build:
    needs: [plan]
    matrix: \${{ fromJSON(needs.plan.outputs.packages) }}
    run: ./build \${{ matrix.value }}
  publish:
    needs: [build]
    run: echo "publish \${{ needs.build.outputs.rpm_libfoo }} \${{ needs.build.outputs.rpm_libbar }}" >> trace
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await eventually(
      () => processesWith(`sleep ${sleep}`).length > 0 && project.count("build libfoo") === 1,
      "libbar's leg hanging, libfoo's started",
    );
    const id = await running.runId();
    await eventually(
      async () =>
        (await project.show(id)).steps.find((s) => s.job === "build#1.build")?.status === "completed",
      "libfoo's leg completed",
    );
    running.child.kill("SIGKILL");
    await running.done;

    const result = await project.run(["resume"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    expect(trace[0]).toBe("plan");
    // Only libbar's leg, interrupted, runs again; libfoo's completed before the crash.
    expect(trace.slice(3)).toEqual(["build libbar", "publish libfoo.rpm libbar.rpm"]);
    expect(trace.slice(1, 3).sort()).toEqual(["build libbar", "build libfoo"]);
    const shown = await project.show(id);
    expect(shown.status).toBe("completed");
    expect(shown.steps.find((s) => s.job === "build#1.build")?.attempt).toBe(1);
    expect(shown.steps.find((s) => s.job === "build#2.build")?.attempt).toBe(2);
    expect(shown.steps.filter((s) => s.job.startsWith("build#"))).toHaveLength(2);
  });
});
