/** Summarizes a V8 .cpuprofile: top self-time functions, time by area, and inclusive time of slipway functions. */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives, for the per-area breakdown. */
function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === "") {
    if (functionName.startsWith("(")) return functionName;
    return "native (C++ bindings: SQLite incl. fsync, fs, crypto)";
  }
  if (url.includes("/dist/engine/")) return "slipway dist/engine";
  if (url.includes("/dist/storage/")) return "slipway dist/storage";
  if (url.includes("/dist/")) return "slipway dist (other)";
  if (url.includes("/dist-bench/")) return "bench harness";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `node_modules/${pkg[1]}`;
  if (url.startsWith("node:")) return "node internals";
  return "other";
}

function label(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  const short = frame.url.replace(/^.*\/(dist|dist-bench|node_modules)\//, "$1/").replace(/^file:\/\//, "");
  return `${name}  ${short}:${frame.lineNumber + 1}`;
}

const add = (map: Map<string, number>, key: string, ms: number) => map.set(key, (map.get(key) ?? 0) + ms);

/**
 * Aggregates one or more profiles (e.g. several runs of the same workload) into one summary. With
 * `from`, each profile counts only from its first sample with a function of that name on the stack
 * (e.g. `acceptSignals`: the wake-up burst of the serve phase, without the submissions before it).
 */
export function summarizeProfiles(paths: readonly string[], top = 25, from?: string): string[] {
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const nearest = new Map<string, number>();
  let total = 0;
  let samples = 0;
  for (const path of paths) {
    const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const onStack = (id: number | undefined): boolean =>
      id !== undefined && (byId.get(id)!.callFrame.functionName === from || onStack(parent.get(id)));
    let first = 0;
    if (from !== undefined)
      while (first < profile.samples.length && !onStack(profile.samples[first])) first++;
    samples += profile.samples.length - first;
    for (let i = first; i < profile.samples.length; i++) {
      // timeDeltas[i + 1] is the time until the next sample: attribute it to sample i.
      const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      const node = byId.get(profile.samples[i]!)!;
      total += dt;
      add(self, label(node.callFrame), dt);
      add(areas, area(node.callFrame), dt);
      const seen = new Set<string>();
      let nearestFrame: string | undefined;
      for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
        const frame = byId.get(id)!.callFrame;
        if (!frame.url.includes("/dist/")) continue;
        const k = label(frame);
        nearestFrame ??= k;
        if (seen.has(k)) continue;
        seen.add(k);
        add(inclusive, k, dt);
      }
      // Self time of natives, node internals and libraries charged to the slipway function that called them.
      add(
        nearest,
        nearestFrame ?? `${node.callFrame.functionName || "(anonymous)"} (no slipway frame on the stack)`,
        dt,
      );
    }
  }
  const pct = (ms: number) => `${((100 * ms) / total).toFixed(1).padStart(5)}%`;
  const fmt = (ms: number) => `${ms.toFixed(1).padStart(8)} ms`;
  const lines: string[] = [
    `cpu profile: ${paths.length} file(s), ${total.toFixed(0)} ms sampled, ${samples} samples${from === undefined ? "" : ` (from the first ${from})`}`,
  ];
  const list = (title: string, map: Map<string, number>, n: number) => {
    lines.push("", title);
    for (const [k, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n))
      lines.push(`  ${fmt(ms)} ${pct(ms)}  ${k}`);
  };
  list("time by area (self):", areas, 50);
  list(`top ${top} functions by self time:`, self, top);
  list(
    `top ${top} by nearest slipway frame (self time outside slipway charged to the slipway caller):`,
    nearest,
    top,
  );
  list(`top ${top} slipway functions by inclusive time:`, inclusive, top);
  return lines;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const paths = process.argv.slice(2);
  if (paths.length === 0) {
    console.error(
      "usage: node dist-bench/profile.js <file.cpuprofile>... (BENCH_TOP=n for more lines; BENCH_PROFILE_FROM=fn: from fn's first sample)",
    );
    process.exit(2);
  }
  const from = process.env.BENCH_PROFILE_FROM || undefined;
  console.log(summarizeProfiles(paths, Number(process.env.BENCH_TOP ?? 25), from).join("\n"));
}
