/**
 * The launcher process (launcher.ts starts it): forks job processes on a server's behalf, so the
 * fork of each job (milliseconds in a large process, more on a busy machine) does not stop the
 * server's event loop. Its output goes back over IPC; it exits when its parent goes.
 */
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { type LauncherReply, type LauncherRequest, writePidRecord } from "./launcher.js";
import { readProcStat } from "./proc.js";

const children = new Map<number, { stdout: Readable; stderr: Readable }>();

function send(reply: LauncherReply): void {
  process.send?.(reply);
}

process.on("message", (message: LauncherRequest) => {
  if (message.type === "destroy") {
    const child = children.get(message.id);
    child?.stdout.destroy();
    child?.stderr.destroy();
    return;
  }
  const { id, command, args, cwd, env, record } = message;
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    send({ type: "error", id, message: (error as Error).message });
    return;
  }
  child.once("error", (error) => send({ type: "error", id, message: error.message }));
  child.once("spawn", () => {
    // Read before this loop can reap the process: a job that exits at once still has its /proc entry.
    const pid = child.pid!;
    const startTime = readProcStat(pid)?.startTime ?? 0;
    // Recorded here, before the server hears of it: a server killed meanwhile leaves it findable.
    let recordError: string | undefined;
    if (record) {
      try {
        writePidRecord(record, pid, startTime);
      } catch (error) {
        recordError = (error as Error).message;
      }
    }
    send({ type: "spawned", id, pid, startTime, ...(recordError !== undefined && { recordError }) });
  });
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  children.set(id, { stdout, stderr });
  let open = 2;
  for (const [name, stream] of [
    ["out", stdout],
    ["err", stderr],
  ] as const) {
    stream.setEncoding("utf8");
    stream.on("data", (data: string) => send({ type: "data", id, stream: name, data }));
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      send({ type: "end", id, stream: name });
      if (--open === 0) children.delete(id);
    };
    stream.once("end", end);
    stream.once("close", end);
  }
  child.once("exit", (code, signal) => send({ type: "exit", id, code, signal }));
});

// The server is gone (or closed us): jobs keep their own process groups, as with a direct spawn.
process.on("disconnect", () => process.exit(0));
