/**
 * Limits against a real `slipway serve`: what used to take the server down (an 8-axis × 8-value matrix
 * grew it past 2.6 GB and stopped /healthz; a signal body nested 100,000 deep and a 20,000-`!`
 * expression gave 500s) is refused with a 4xx that names the limit, and the server keeps answering.
 */
import { describe, expect, it } from "vitest";
import type { ErrorResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { Project } from "../cli/harness.js";
import { startServer } from "./server.js";

const axes = Array.from({ length: 8 }, (_, i) => `      axis${i}: [1, 2, 3, 4, 5, 6, 7, 8]`).join("\n");
const MATRIX = `name: huge\njobs:\n  build:\n    matrix:\n${axes}\n    run: echo \${{ matrix.axis0 }}\n`;
const GATE = "name: gate\njobs:\n  approve:\n    wait: { signal: go }\n";

describe("slipway serve limits", () => {
  it("refuses an 8x8 matrix, a deep expression and a deep signal body with a 4xx naming the limit, and keeps serving", async () => {
    const project = new Project();
    const server = await startServer(project);
    const headers = { "content-type": "application/json" };
    const submit = (name: string, source: string) =>
      server.api("/runs", {
        method: "POST",
        headers,
        body: JSON.stringify({ file: { name: `${project.dir}/${name}`, source } }),
      });

    const matrix = await submit("huge.yml", MATRIX);
    expect(matrix.status).toBe(400);
    const refused = (await matrix.json()) as ErrorResponse;
    expect(refused.error.problems?.join("\n")).toMatch(
      /huge\.yml:5:7: `matrix` of job `build` makes 16,777,216 combinations .*over the limit of 256 legs per job \(MAX_MATRIX_LEGS, .*docs\/pipelines\.md\)/,
    );
    // Still answering, and nothing was started.
    expect((await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(20_000) })).status).toBe(200);
    expect(await server.json<unknown[]>("GET", "/runs")).toEqual([]);

    const deepIf = `jobs:\n  a:\n    if: \${{ ${"!".repeat(20_000)}true }}\n    run: echo\n`;
    const expression = await submit("deep.yml", deepIf);
    expect(expression.status).toBe(400);
    expect(((await expression.json()) as ErrorResponse).error.problems?.join("\n")).toContain(
      "MAX_EXPRESSION_LENGTH",
    );

    const gate = await server.json<SubmitResponse>(
      "POST",
      "/runs",
      { file: { name: `${project.dir}/gate.yml`, source: GATE } },
      201,
    );
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    const signal = await server.api(`/runs/${gate.id}/signals/go`, { method: "POST", headers, body: deep });
    expect(signal.status).toBe(400);
    const tooDeep = (await signal.json()) as ErrorResponse;
    expect(tooDeep.error.code).toBe("too_deep");
    expect(tooDeep.error.message).toContain("deeper than the limit of 64 levels (MAX_JSON_DEPTH");

    // The run still waits, and a payload within the limits still reaches it.
    await server.json("POST", `/runs/${gate.id}/signals/go`, { by: "ana" });
    await server.status(gate.id, "completed");
    expect((await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(20_000) })).status).toBe(200);
  });

  it("slipway validate and submit exit 2 on the 8x8 matrix, naming the limit", async () => {
    const project = new Project();
    project.write("huge.yml", MATRIX);
    const validate = await project.run(["validate", "huge.yml"]);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain("over the limit of 256 legs per job (MAX_MATRIX_LEGS");
    const server = await startServer(project);
    const submit = await project.run(["submit", "huge.yml", ...server.flags]);
    expect(submit.code).toBe(2);
    expect(submit.stderr).toContain("MAX_MATRIX_LEGS");
  });
});
