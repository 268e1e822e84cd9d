/**
 * Builds the web dashboard (src/web) into dist/web: one JS and one CSS file with hashed names, and
 * the index.html that loads them. No CDN: everything it needs is in the package. Prints the first
 * page's gzipped size and fails over the budget (200 KB).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export const BUDGET_GZIP_BYTES = 200 * 1024;
const root = join(import.meta.dirname, "..");
const out = join(root, "dist", "web");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const result = await build({
  entryPoints: [join(root, "src", "web", "main.tsx")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox113", "safari16.4"],
  jsx: "automatic",
  jsxImportSource: "preact",
  tsconfig: join(root, "src", "web", "tsconfig.json"),
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((file) => join(root, file));
const script = outputs.find((f) => f.endsWith(".js"));
const style = outputs.find((f) => f.endsWith(".css"));
if (!script || !style) throw new Error(`esbuild wrote no script or style: ${outputs.join(", ")}`);
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Slipway</title>
<link rel="stylesheet" href="/assets/${basename(style)}">
<script type="module" src="/assets/${basename(script)}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The Slipway dashboard needs JavaScript; the CLI and the HTTP API work without it.</noscript>
</body>
</html>
`;
writeFileSync(join(out, "index.html"), html);

/** The first page: the HTML, the script and the style, each gzipped as a server would send them. */
const gzipped = [join(out, "index.html"), script, style].reduce(
  (sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length,
  0,
);
const kb = (gzipped / 1024).toFixed(1);
console.log(`dashboard: dist/web, first page ${kb} KB gzipped (budget ${BUDGET_GZIP_BYTES / 1024} KB)`);
if (gzipped > BUDGET_GZIP_BYTES) {
  console.error(`dashboard: the first page is over its budget of ${BUDGET_GZIP_BYTES / 1024} KB gzipped`);
  process.exit(1);
}
