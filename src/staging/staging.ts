/**
 * Staged streams: an inbound byte stream (an uploaded source archive, say) is written durably under
 * the data directory, keyed to its run, so a saga recovered after a crash still finds it.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";

export const stagedRefSchema = z.object({
  kind: z.literal("staged"),
  runId: z.string(),
  name: z.string(),
  /** Relative to the data directory, so the directory can move. */
  path: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string(),
});

/** A JSON-serializable reference to a staged stream; put it in a saga's input. */
export type StagedRef = z.infer<typeof stagedRefSchema>;

export type ByteSource = Readable | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

const STAGED_DIR = "staged";
const NAME = /^[A-Za-z0-9_.-]+$/;

/** Writes the stream to `<dataDir>/staged/<runId>/<name>`, fsync'd, atomically renamed into place. */
export async function stageStream(
  dataDir: string,
  runId: string,
  name: string,
  source: ByteSource,
): Promise<StagedRef> {
  if (!NAME.test(name) || name.startsWith(".")) throw new Error(`staged name "${name}" must match ${NAME}`);
  if (!NAME.test(runId)) throw new Error(`run id "${runId}" is not a valid directory name`);
  const relative = join(STAGED_DIR, runId, name);
  const dir = resolve(dataDir, STAGED_DIR, runId);
  await mkdir(dir, { recursive: true });
  const final = resolve(dataDir, relative);
  const partial = `${final}.partial-${process.pid}-${Date.now()}`;
  const hash = createHash("sha256");
  let bytes = 0;
  const readable =
    source instanceof ReadableStream ? Readable.fromWeb(source as never) : Readable.from(source);
  try {
    await pipeline(
      readable,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(partial),
    );
    await fsync(partial);
    await rename(partial, final);
    await fsync(dir);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  return { kind: "staged", runId, name, path: relative, bytes, sha256: hash.digest("hex") };
}

export function stagedPath(dataDir: string, ref: StagedRef): string {
  return resolve(dataDir, ref.path);
}

/** Removes everything staged for a run (called when it ends). */
export async function removeStaged(dataDir: string, runId: string): Promise<void> {
  if (!NAME.test(runId)) return;
  await rm(resolve(dataDir, STAGED_DIR, runId), { recursive: true, force: true });
}

/**
 * Removes staged data no live run will read: that of ended runs, and that of runs
 * that never came to exist (staged, then the process died before starting them) once older than `graceMs`.
 */
export async function sweepStaged(
  dataDir: string,
  isLive: (runId: string) => Promise<"live" | "ended" | "unknown">,
  graceMs: number,
): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(resolve(dataDir, STAGED_DIR));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const runId of entries) {
    const dir = resolve(dataDir, STAGED_DIR, runId);
    const state = await isLive(runId);
    if (state === "live") continue;
    if (state === "unknown" && Date.now() - (await stat(dir)).mtimeMs < graceMs) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(runId);
  }
  return removed;
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
