#!/bin/sh
# Compares engine figures of two commits measured interleaved in one sitting, so both see the same
# machine: base, head, head, base, base, head... each a fresh `npm run bench` of the engine phases.
#
#   bench/ab.sh <base-rev> [rounds] [phases]    # head = the working tree's HEAD; rounds default 9
#
# Engine overheads are one group commit's length (500 transitions a batch), which moves 10-30 % from
# one run to the next on a shared disk: 3 rounds once showed 1.78x for a change that 15 showed at 1.07x.
#
# Prints, per figure, the median of each side and head/base. Trees are built under $TMPDIR/slipway-ab.
set -eu
base=$1
rounds=${2:-9}
phases=${3:-engine,groups,rss,signal,recovery}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/slipway-ab
rm -rf "$work" && mkdir -p "$work/out"
prepare() { # <name> <rev>
  git -C "$root" worktree remove --force "$work/$1" 2>/dev/null || true
  git -C "$root" worktree add --detach "$work/$1" "$2" >/dev/null
  ln -s "$root/node_modules" "$work/$1/node_modules"
  (cd "$work/$1" && npm run build >/dev/null && npx tsc -p tsconfig.bench.json)
}
prepare base "$base"
prepare head HEAD
measure() { # <name> <round>
  (cd "$work/$1" && BENCH_PHASES=$phases BENCH_JSON="$work/out/$1.$2.json" node dist-bench/run.js >/dev/null 2>&1) ||
    echo "ab: $1 round $2 failed" >&2
}
i=1
while [ "$i" -le "$rounds" ]; do
  if [ $((i % 2)) -eq 1 ]; then measure base "$i"; measure head "$i"; else measure head "$i"; measure base "$i"; fi
  echo "ab: round $i of $rounds done (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  i=$((i + 1))
done
node -e '
const { readdirSync, readFileSync } = require("node:fs");
const dir = process.argv[1];
const sides = { base: [], head: [] };
for (const f of readdirSync(dir)) sides[f.split(".")[0]].push(JSON.parse(readFileSync(`${dir}/${f}`, "utf8")));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const keys = [...new Set(sides.head.flatMap(Object.keys))].filter((k) => !k.startsWith("bench.")).sort();
console.log(`${"figure".padEnd(48)} ${"base".padStart(12)} ${"head".padStart(12)}  head/base   (medians of ${sides.base.length} and ${sides.head.length})`);
for (const k of keys) {
  const b = sides.base.map((x) => x[k]).filter((v) => typeof v === "number");
  const h = sides.head.map((x) => x[k]).filter((v) => typeof v === "number");
  if (h.length === 0) continue;
  const mb = b.length ? median(b) : undefined, mh = median(h);
  const ratio = mb ? (mh / mb).toFixed(3) : "-";
  console.log(`${k.padEnd(48)} ${String(mb ?? "-").padStart(12)} ${String(mh).padStart(12)}  ${ratio}`);
}' "$work/out"
git -C "$root" worktree remove --force "$work/base"
git -C "$root" worktree remove --force "$work/head"
