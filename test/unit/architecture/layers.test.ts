/**
 * The layers of docs/architecture.md hold: no import in src/ points up or sideways, no runtime
 * imports form a cycle, no module is left out of the table, and no file is over 600 lines. The
 * checker itself is shown to catch each kind of fault.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  arrowsAgainstOrder,
  type Import,
  layerOf,
  readImports,
  readLayers,
  runtimeCycles,
  tsFiles,
} from "./layers.js";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const layers = readLayers(readFileSync(join(ROOT, "docs", "architecture.md"), "utf8"));
const imports = readImports(ROOT, "src");

describe("layers", () => {
  it("reads the layer table of docs/architecture.md", () => {
    expect(layers.map((l) => l.name)).toEqual(
      expect.arrayContaining(["basics", "storage", "engine", "pipeline", "runs", "http", "cli"]),
    );
    expect(layerOf(layers, "src/engine/executor.ts")?.name).toBe("engine");
    expect(layerOf(layers, "src/errors.ts")?.name).toBe("basics");
    expect(layerOf(layers, "src/index.ts")?.name).toBe("index");
    expect(layerOf(layers, "src/storage/sqlite/sqlite-storage.ts")?.name).toBe("storage");
  });

  it("no import in src/ points against the order", () => {
    expect(imports.length).toBeGreaterThan(100);
    expect(arrowsAgainstOrder(layers, imports)).toEqual([]);
  });

  it("no runtime imports in src/ form a cycle", () => {
    expect(runtimeCycles(imports)).toEqual([]);
  });

  it("no file in src/ is over 600 lines", () => {
    const long = tsFiles(join(ROOT, "src"))
      .map((file) => [file, readFileSync(file, "utf8").trimEnd().split("\n").length] as const)
      .filter(([, lines]) => lines > 600);
    expect(long).toEqual([]);
  });
});

describe("the layer checker", () => {
  const edge = (from: string, to: string, typeOnly = false): Import => ({ from, to, typeOnly });

  it("catches an import that points up, type-only ones included", () => {
    expect(arrowsAgainstOrder(layers, [edge("src/engine/executor.ts", "src/runs/local.ts")])).toEqual([
      "src/engine/executor.ts (engine) -> src/runs/local.ts (runs)",
    ]);
    expect(arrowsAgainstOrder(layers, [edge("src/errors.ts", "src/storage/types.ts", true)])).toEqual([
      "src/errors.ts (basics) -> src/storage/types.ts (storage) [type-only]",
    ]);
  });

  it("catches an import sideways, between layers of the same rank", () => {
    expect(arrowsAgainstOrder(layers, [edge("src/shell/proc.ts", "src/storage/types.ts")])).toHaveLength(1);
  });

  it("allows imports down and within a layer", () => {
    expect(
      arrowsAgainstOrder(layers, [
        edge("src/runs/local.ts", "src/engine/executor.ts"),
        edge("src/engine/executor.ts", "src/engine/events.ts"),
        edge("src/cli/main.ts", "src/errors.ts"),
      ]),
    ).toEqual([]);
  });

  it("names a module that is in no layer", () => {
    expect(arrowsAgainstOrder(layers, [edge("src/cli/main.ts", "src/newthing/x.ts")])).toEqual([
      "src/cli/main.ts -> src/newthing/x.ts: src/newthing/x.ts is in no layer",
    ]);
  });

  it("catches a cycle of runtime imports, and ignores one closed by a type-only import", () => {
    const a = "src/pipeline/a.ts";
    const b = "src/pipeline/b.ts";
    const c = "src/pipeline/c.ts";
    expect(runtimeCycles([edge(a, b), edge(b, c), edge(c, a)])).toEqual([[a, b, c, a]]);
    expect(runtimeCycles([edge(a, b), edge(b, c), edge(c, a, true)])).toEqual([]);
  });

  it("reads type-only imports and re-exports from the source", () => {
    const found = readImports(ROOT, "test/unit/architecture/fixtures");
    expect(found).toEqual([
      {
        from: "test/unit/architecture/fixtures/a.ts",
        to: "test/unit/architecture/fixtures/b.ts",
        typeOnly: true,
      },
      {
        from: "test/unit/architecture/fixtures/a.ts",
        to: "test/unit/architecture/fixtures/c.ts",
        typeOnly: false,
      },
      {
        from: "test/unit/architecture/fixtures/a.ts",
        to: "test/unit/architecture/fixtures/b.ts",
        typeOnly: true,
      },
      {
        from: "test/unit/architecture/fixtures/a.ts",
        to: "test/unit/architecture/fixtures/c.ts",
        typeOnly: false,
      },
      {
        from: "test/unit/architecture/fixtures/b.ts",
        to: "test/unit/architecture/fixtures/c.ts",
        typeOnly: false,
      },
    ]);
  });
});
