/** Compiling runs: one saga per pipeline text and plan shape, shared by runs whose inputs differ. */
import { describe, expect, it } from "vitest";
import type { Saga } from "../../../src/definition/saga.js";
import { compileRun, recompile } from "../../../src/pipeline/compile.js";
import type { RunRecord } from "../../../src/storage/types.js";

const SOURCE = `name: ci
inputs:
  tag: { default: latest }
  multiarch: { default: false }
jobs:
  build:
    matrix:
      platform: [linux/amd64]
      include:
        - { platform: linux/arm64, if: "\${{ inputs.multiarch }}" }
    run: echo "building \${{ inputs.tag }} for \${{ matrix.platform }}"
  heavy:
    needs: [build]
    tier: extra
    run: echo heavy
`;

const runtime = { dataDir: "/tmp/unused" };

describe("compileRun", () => {
  it("gives runs that differ only in their inputs one saga version, and a known saga is shared", () => {
    const sagas = new Map<string, Saga>();
    const known = (name: string, version: number) => sagas.get(`${name}@${version}`);
    const first = compileRun("ci.yml", SOURCE, { inputs: { tag: "v1" }, tiers: [] }, runtime, { known });
    sagas.set(`${first.saga.name}@${first.saga.version}`, first.saga);
    const second = compileRun("ci.yml", SOURCE, { inputs: { tag: "v2" }, tiers: [] }, runtime, { known });
    expect(second.saga).toBe(first.saga);
    // Each run keeps its own inputs in its spec: the saga's actions read them from there.
    expect(second.spec.inputs).toEqual({ tag: "v2" });
    expect(second.plan.inputs.tag).toBe("v2");
  });

  it("gives another version when the plan's shape differs: tiers, or inputs that add matrix legs", () => {
    const base = compileRun("ci.yml", SOURCE, { inputs: {}, tiers: [] }, runtime);
    const tiered = compileRun("ci.yml", SOURCE, { inputs: {}, tiers: ["extra"] }, runtime);
    const wider = compileRun("ci.yml", SOURCE, { inputs: { multiarch: "true" }, tiers: [] }, runtime);
    const edited = compileRun("ci.yml", `${SOURCE}# edited\n`, { inputs: {}, tiers: [] }, runtime);
    const versions = new Set([base, tiered, wider, edited].map((c) => c.saga.version));
    expect(versions.size).toBe(4);
    expect(wider.plan.steps.map((s) => s.action)).toEqual(["build.linux-amd64", "build.linux-arm64"]);
  });

  it("rebuilds a stored run with the version it was started with", () => {
    const compiled = compileRun("ci.yml", SOURCE, { inputs: { tag: "v1" }, tiers: [] }, runtime);
    const record = {
      id: "r1",
      saga: compiled.saga.name,
      version: 12345,
      input: { run: compiled.spec },
    } as unknown as RunRecord;
    const rebuilt = recompile(record, runtime);
    expect(rebuilt.saga.version).toBe(12345);
    expect(rebuilt.spec).toEqual(compiled.spec);
  });
});
