/** Crash test (e): SIGKILL in the middle of a loop's third iteration, while it polls for the build; a new process continues that iteration. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { stateProblems, stepStatuses, trail, Workspace } from "./harness.js";

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

it("kill -9 during the third iteration's wait: iterations 1 and 2 do not run again, the merge request opens once", async () => {
  ws = new Workspace();
  const storage = await ws.storage();
  writeFileSync(join(ws.controlDir, "build-1"), "error: hunk 1 does not apply");
  writeFileSync(join(ws.controlDir, "build-2"), "error: hunk 2 does not apply");
  const first = ws.spawn("first", { start: { saga: "looped", inputs: [{}] } });
  const [id] = await first.started();
  if (id === undefined) throw new Error("no run started");
  const checksOf = (proc: string, step: string) =>
    ws.runs().filter((r) => r.proc === proc && r.action === step && r.phase === "check" && r.event === "end");
  await first.waitFor(
    "the third iteration to poll for its build",
    () => checksOf("first", "attempts#3.result").length > 0,
  );
  await first.kill();

  const before = await storage.load(id);
  expect(stepStatuses(before)).toEqual({
    attempts: "waiting#1",
    "attempts#1.submit": "completed#1",
    "attempts#1.result": "completed#1",
    "attempts#2.submit": "completed#1",
    "attempts#2.result": "completed#1",
    "attempts#3.submit": "completed#1",
    "attempts#3.result": "waiting#1",
  });

  const second = ws.spawn("second", { await: [id] });
  await second.waitFor(
    "the second process to poll the third build",
    () => checksOf("second", "attempts#3.result").length > 0,
  );
  writeFileSync(join(ws.controlDir, "build-3"), "pass");
  const [ended] = await second.finished();
  expect(ended).toMatchObject({ id, status: "completed", output: { "open-mr": 3 } });

  const runs = ws.runs();
  for (const iteration of [1, 2, 3])
    expect(trail(runs, id, `attempts#${iteration}.submit`)).toEqual(["first:start:1", "first:end:1"]);
  // Nothing of iterations 1 and 2 ran in the second process: not a submit, not a check.
  expect(runs.filter((r) => r.proc === "second" && /^attempts#[12]\./.test(r.action))).toEqual([]);
  expect(trail(runs, id, "open-mr")).toEqual(["second:start:1", "second:end:1"]);
  const after = await storage.load(id);
  expect(stepStatuses(after)).toMatchObject({
    attempts: "completed#1",
    "attempts#3.result": "completed#1",
    "open-mr": "completed#1",
  });
  expect(Object.keys(stepStatuses(after)).filter((s) => s.startsWith("attempts#4"))).toEqual([]);
  expect(stateProblems(after!, await storage.history(id))).toEqual([]);
  const iterations = (await storage.history(id))
    .filter((e) => e.type === "loop:iteration")
    .map((e) => e.data);
  expect(iterations).toEqual([
    { iteration: 2, after: "last build failed: error: hunk 1 does not apply" },
    { iteration: 3, after: "last build failed: error: hunk 2 does not apply" },
  ]);
});
