/** The runs a process hosts: an end told late, after the run was taken again from it, leaves it hosted. */
import { expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { CompiledRun } from "../../../src/pipeline/compile.js";
import { HostedRuns } from "../../../src/runs/hosted.js";
import { tempDir } from "../../helpers.js";

const deploy = saga("deploy", { version: 1 })
  .action("ship", { output: z.string(), run: () => "shipped" })
  .build();

function hostedRuns() {
  const registered: string[] = [];
  const hosted = new HostedRuns(
    {
      register: (s) => registered.push(s.name) > 0,
      unregister: (s) => registered.splice(registered.indexOf(s.name), 1).length > 0,
    },
    tempDir(),
  );
  return { hosted, registered, compiled: { saga: deploy } as unknown as CompiledRun };
}

it("ignores an end told up to the seq the run was taken again after, and heeds a later one", () => {
  const { hosted, registered, compiled } = hostedRuns();
  hosted.host("r1", hosted.register(compiled), { mark: false });
  // Held after a failure at seq 7, retried before its `run:failed` (seq 7) was told.
  hosted.takenAgain("r1", 7);
  hosted.ended("r1", 7);
  expect(hosted.has("r1")).toBe(true);
  expect(registered).toEqual(["deploy"]);
  // The retry's own end.
  hosted.ended("r1", 12);
  expect(hosted.has("r1")).toBe(false);
  expect(registered).toEqual([]);
});

it("shares one registered saga among its runs and unregisters it with the last", () => {
  const { hosted, registered, compiled } = hostedRuns();
  hosted.host("a", hosted.register(compiled), { mark: false });
  hosted.host("b", hosted.register(compiled), { mark: true, takenAfter: 3 });
  expect(registered).toEqual(["deploy"]);
  expect(hosted.known("deploy", 1)).toBe(deploy);
  hosted.ended("b", 3);
  hosted.ended("a", undefined);
  expect(hosted.ids()).toEqual(["b"]);
  hosted.unhost("b");
  expect(registered).toEqual([]);
  expect(hosted.known("deploy", 1)).toBeUndefined();
});
