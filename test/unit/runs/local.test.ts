/** The runs service's shared cases, in-process: the service a foreground `slipway run` hosts. */
import { LocalRuns } from "../../../src/runs/local.js";
import { runServiceCases } from "./cases.js";

runServiceCases({
  name: "in-process",
  open: (db) => LocalRuns.open({ db, adopt: "asked", pollIntervalMs: 50 }),
});
