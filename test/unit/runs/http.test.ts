/**
 * The runs service's shared cases over HTTP: the HTTP client talking to the API app in-process
 * (`app.request`, no socket), over the service a server hosts.
 */
import { createApp } from "../../../src/http/app.js";
import { HttpRuns } from "../../../src/http/client.js";
import { LocalRuns } from "../../../src/runs/local.js";
import type { RunService } from "../../../src/runs/service.js";
import { runServiceCases } from "./cases.js";

runServiceCases({
  name: "over HTTP",
  async open(db): Promise<RunService> {
    const served = await LocalRuns.open({ db, adopt: "all", pollIntervalMs: 50 });
    const app = createApp({ runs: served, logger: served.runtime.logger, token: "case-token" });
    // Closing the client closes what it talks to: the server's service.
    class Served extends HttpRuns {
      override async close(): Promise<void> {
        await served.close();
      }
    }
    return new Served({
      baseUrl: "http://slipway.test",
      token: "case-token",
      fetch: async (url, init) => app.request(url, init),
    });
  },
});
