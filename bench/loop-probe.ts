/**
 * Preloaded into the bench's `slipway serve` (node --import) to sample its event-loop delay where it
 * happens, at no cost to the product: on SIGUSR2 it writes the delay seen since the last SIGUSR2 to
 * $BENCH_LOOP_PROBE (JSON, renamed into place) and starts over.
 */
import { renameSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const out = process.env.BENCH_LOOP_PROBE;
if (out) {
  // A timer every 10 ms is noise next to the server's own work. The histogram records each interval
  // whole: the lag is what exceeds the resolution.
  const resolutionMs = 10;
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  let seq = 0;
  process.on("SIGUSR2", () => {
    const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - resolutionMs) * 100) / 100);
    const snapshot = {
      seq: ++seq,
      samples: histogram.count,
      p50: ms(histogram.percentile(50)),
      p99: ms(histogram.percentile(99)),
      max: ms(histogram.max),
    };
    histogram.reset();
    writeFileSync(`${out}.tmp`, JSON.stringify(snapshot));
    renameSync(`${out}.tmp`, out);
  });
}
