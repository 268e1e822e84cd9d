/**
 * The layer checker: reads the layer table of docs/architecture.md and the imports of every module,
 * and names each import that points up or sideways, and each cycle of runtime imports.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

export interface Layer {
  rank: number;
  name: string;
  /** A folder (`src/engine/`) or a file pattern (`src/*.ts`: the files directly in src). */
  path: string;
}

export interface Import {
  /** Importing and imported modules, relative to the root, e.g. `src/engine/executor.ts`. */
  from: string;
  to: string;
  typeOnly: boolean;
}

/** The layers of the first table under "rank  layer  folder" in the document. */
export function readLayers(markdown: string): Layer[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => /^rank\s+layer\s+folder/.test(line));
  if (start === -1) throw new Error('no layer table (a "rank  layer  folder" header) in the document');
  const layers: Layer[] = [];
  for (const line of lines.slice(start + 1)) {
    const match = /^(\d+)\s+(\S+)\s+(\S+)/.exec(line);
    if (!match) break;
    layers.push({ rank: Number(match[1]), name: match[2]!, path: match[3]! });
  }
  return layers;
}

/** The layer a module belongs to: the most specific path that contains it. */
export function layerOf(layers: readonly Layer[], module: string): Layer | undefined {
  const fits = layers.filter((layer) =>
    layer.path.endsWith("/*.ts")
      ? dirname(module) === layer.path.slice(0, -"/*.ts".length) && module.endsWith(".ts")
      : layer.path.endsWith("/")
        ? module.startsWith(layer.path)
        : module === layer.path,
  );
  return fits.sort((a, b) => b.path.length - a.path.length)[0];
}

/** Every relative import and re-export of the TypeScript files under `dir`, with whether it is type-only. */
export function readImports(root: string, dir: string): Import[] {
  const imports: Import[] = [];
  for (const file of tsFiles(join(root, dir))) {
    const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const from = relative(root, file);
    const add = (specifier: string, typeOnly: boolean) => {
      if (!specifier.startsWith(".")) return;
      const to = relative(root, resolve(dirname(file), specifier)).replace(/\.js$/, ".ts");
      imports.push({ from, to, typeOnly });
    };
    for (const statement of source.statements) {
      if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
        const clause = statement.importClause;
        const named = clause?.namedBindings;
        const allTypes =
          clause !== undefined &&
          (clause.isTypeOnly ||
            (clause.name === undefined &&
              named !== undefined &&
              ts.isNamedImports(named) &&
              named.elements.length > 0 &&
              named.elements.every((e) => e.isTypeOnly)));
        add(statement.moduleSpecifier.text, allTypes);
      } else if (
        ts.isExportDeclaration(statement) &&
        statement.moduleSpecifier &&
        ts.isStringLiteral(statement.moduleSpecifier)
      ) {
        const clause = statement.exportClause;
        const allTypes =
          statement.isTypeOnly ||
          (clause !== undefined &&
            ts.isNamedExports(clause) &&
            clause.elements.length > 0 &&
            clause.elements.every((e) => e.isTypeOnly));
        add(statement.moduleSpecifier.text, allTypes);
      }
    }
    source.forEachChild(function visit(node): void {
      // import("./x.js"): a runtime import too.
      if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteral(node.arguments[0])
      )
        add(node.arguments[0].text, false);
      node.forEachChild(visit);
    });
  }
  return imports;
}

/** Imports against the order: to a higher rank, or to another layer of the same rank. */
export function arrowsAgainstOrder(layers: readonly Layer[], imports: readonly Import[]): string[] {
  const problems: string[] = [];
  for (const edge of imports) {
    const from = layerOf(layers, edge.from);
    const to = layerOf(layers, edge.to);
    if (!from || !to) {
      problems.push(`${edge.from} -> ${edge.to}: ${!from ? edge.from : edge.to} is in no layer`);
      continue;
    }
    if (from === to) continue;
    if (to.rank > from.rank || (to.rank === from.rank && to.name !== from.name))
      problems.push(
        `${edge.from} (${from.name}) -> ${edge.to} (${to.name})${edge.typeOnly ? " [type-only]" : ""}`,
      );
  }
  return problems;
}

/** Each cycle of runtime imports (type-only imports are erased, so they cannot form one), once. */
export function runtimeCycles(imports: readonly Import[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const edge of imports) {
    if (edge.typeOnly) continue;
    edges.set(edge.from, [...(edges.get(edge.from) ?? []), edge.to]);
  }
  const cycles = new Map<string, string[]>();
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "visiting");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === "visiting") {
        const cycle = stack.slice(stack.indexOf(next));
        // One entry per cycle, whichever module it was found from.
        const key = [...cycle].sort().join(" ");
        if (!cycles.has(key)) cycles.set(key, [...cycle, next]);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) visit(node);
  return [...cycles.values()];
}

/** The TypeScript modules under `dir` (the dashboard's `.tsx` included), sorted. */
export function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts"))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}
