/** Size and free space of the volume a directory is on, via `statfs`; a directory not made yet counts as its nearest existing parent. */
import { existsSync, statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** The nearest existing directory at or above `dir`: the data dir may not exist before the first start. */
function existing(dir: string): string {
  let current = resolve(dir);
  while (!existsSync(current)) {
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return current;
}

/** Total bytes of the volume `dir` is on. */
export function volumeSizeBytes(dir: string): number {
  const stats = statfsSync(existing(dir));
  return stats.blocks * stats.bsize;
}

/** Bytes an unprivileged process can still write on the volume `dir` is on, now. */
export function volumeFreeBytes(dir: string): number {
  const stats = statfsSync(existing(dir));
  return stats.bavail * stats.bsize;
}
