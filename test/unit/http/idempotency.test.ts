/** `POST /runs` with an `Idempotency-Key` header: a retried submission returns the run the first one started. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createApp } from "../../../src/http/app.js";
import { LocalRuns } from "../../../src/runs/local.js";
import type { ErrorResponse, RunSummary, SubmitResponse } from "../../../src/runs/schemas.js";
import { tempDir } from "../../helpers.js";

describe("Idempotency-Key", () => {
  it("returns the same run for a retried POST, and 409 for the key with another request", async () => {
    const dir = tempDir();
    const runs = await LocalRuns.open({ db: join(dir, "slipway.db"), adopt: "all", pollIntervalMs: 50 });
    try {
      const app = createApp({ runs, logger: runs.runtime.logger, token: "t" });
      const file = join(dir, "tag.yml");
      const source = "name: tag\ninputs:\n  tag: { type: string }\njobs:\n  tag:\n    run: echo tag\n";
      writeFileSync(file, source);
      const post = (tag: string) =>
        app.request("/api/v1/runs", {
          method: "POST",
          headers: {
            authorization: "Bearer t",
            "content-type": "application/json",
            "idempotency-key": "deploy-42",
          },
          body: JSON.stringify({ file: { name: file, source }, inputs: { tag } }),
        });
      const first = await post("v1");
      expect(first.status).toBe(201);
      const retried = await post("v1");
      expect(retried.status).toBe(201);
      const { id } = (await first.json()) as SubmitResponse;
      expect(((await retried.json()) as SubmitResponse).id).toBe(id);

      const other = await post("v2");
      expect(other.status).toBe(409);
      expect(((await other.json()) as ErrorResponse).error.code).toBe("idempotency_conflict");

      const listed = await app.request("/api/v1/runs?key=deploy-42", {
        headers: { authorization: "Bearer t" },
      });
      expect(((await listed.json()) as RunSummary[]).map((r) => r.id)).toEqual([id]);
      // Let the run end before closing, so its job is not stopped halfway.
      for await (const _ of await runs.events(id));
    } finally {
      await runs.close();
    }
  });
});
