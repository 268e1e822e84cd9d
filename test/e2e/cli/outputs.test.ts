/** Values flowing between jobs: `$SLIPWAY_OUTPUT` to `needs.<job>.outputs`, undo's `outputs`, signal payloads. */
import { describe, expect, it } from "vitest";
import { Project, runId } from "./harness.js";

describe("outputs", () => {
  it("passes outputs to a later job's command and env, multi-line ones too, and to the job's own undo", async () => {
    const project = new Project();
    project.tool(
      "build",
      `echo "build" >> trace
echo "digest=sha256:abc123" >> "$SLIPWAY_OUTPUT"
{ echo "notes<<EOF"; echo "line one"; echo "line two = still two"; echo "EOF"; } >> "$SLIPWAY_OUTPUT"`,
    );
    project.write(
      "pipe.yml",
      `name: outputs
jobs:
  build:
    run: ./build
    undo: echo "undo build \${{ outputs.digest }}" >> trace
  deploy:
    needs: [build]
    env:
      DIGEST: \${{ needs.build.outputs.digest }}
      NOTES: \${{ needs.build.outputs.notes }}
    run: |
      echo "command \${{ needs.build.outputs.digest }}" >> trace
      echo "env $DIGEST" >> trace
      printf '%s\\n' "$NOTES" > notes.txt
      echo "url=https://example.test/\${{ needs.build.outputs.digest }}" >> "$SLIPWAY_OUTPUT"
    undo: echo "undo deploy \${{ outputs.url }}" >> trace
  verify:
    needs: [deploy]
    run: echo "verify \${{ needs.deploy.outputs.url }}" >> trace; exit 1
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stderr).toBe(1);
    expect(project.trace()).toEqual([
      "build",
      "command sha256:abc123",
      "env sha256:abc123",
      "verify https://example.test/sha256:abc123",
      "undo deploy https://example.test/sha256:abc123",
      "undo build sha256:abc123",
    ]);
    expect(project.read("notes.txt")).toBe("line one\nline two = still two\n");

    const shown = await project.show(runId(result.stdout));
    const build = shown.steps.find((s) => s.job === "build")!;
    expect(build.output?.build?.outputs).toEqual({
      digest: "sha256:abc123",
      notes: "line one\nline two = still two",
    });
  });

  it("releases a wait job with a signal from another process; the next job reads the payload", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `name: gated
jobs:
  build:
    run: echo build >> trace
  approve:
    needs: [build]
    wait:
      signal: approved
      timeout: 1m
  release:
    needs: [approve]
    run: echo "release by \${{ needs.approve.outputs.by }} ticket \${{ needs.approve.outputs.ticket }}" >> trace
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await running.waitFor(/approve: waiting for signal "approved"/);
    const id = runId(running.stdout);
    expect(project.trace()).toEqual(["build"]);
    expect((await project.show(id)).steps.find((s) => s.job === "approve")?.status).toBe("waiting");

    const sent = await project.run(["signal", id, "approved", '{"by":"ana","ticket":42}']);
    expect(sent.code, sent.stderr).toBe(0);
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["build", "release by ana ticket 42"]);
    expect((await project.show(id)).status).toBe("completed");
  });
});
