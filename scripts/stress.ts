/**
 * `npm run test:stress`: the whole suite (`npm test`) with two CPU-bound busy processes beside it, as
 * this machine is when several things happen at once. The busy processes stop when the suite ends.
 */
import { spawn } from "node:child_process";

const BUSY = 2;
/** A busy process also stops on its own after this long, or once this script is gone. */
const BUSY_LIMIT_MS = 60 * 60_000;

// Spins; every ~100 ms it checks that the parent still lives, so a killed script leaves nothing behind.
const busyLoop = `
const parent = ${process.pid};
const end = Date.now() + ${BUSY_LIMIT_MS};
let next = 0;
for (;;) {
  const now = Date.now();
  if (now >= next) {
    if (now >= end) process.exit(0);
    try { process.kill(parent, 0); } catch { process.exit(0); }
    next = now + 100;
  }
}
`;

const busy = Array.from({ length: BUSY }, () =>
  spawn(process.execPath, ["-e", busyLoop], { stdio: "ignore" }),
);
const stopBusy = () => {
  for (const child of busy) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
};

const started = Date.now();
console.log(
  `test:stress: ${BUSY} busy processes (pids ${busy.map((c) => c.pid).join(", ")}) beside npm test`,
);
// Extra arguments go to vitest: `npm run test:stress -- test/e2e` stresses only the end-to-end tests.
const extra = process.argv.slice(2);
// Its own process group, so a signal to this script reaches every process of the suite (npm does not
// pass it on to the build it is running).
const suite = spawn("npm", ["test", ...(extra.length > 0 ? ["--", ...extra] : [])], {
  stdio: "inherit",
  detached: true,
});

for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    try {
      process.kill(-(suite.pid as number), signal);
    } catch {} // the suite already ended
    stopBusy();
  });

suite.on("exit", (code, signal) => {
  stopBusy();
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`test:stress: npm test ${code === 0 ? "passed" : "failed"} under load in ${seconds} s`);
  process.exit(code ?? (signal ? 1 : 0));
});
