/** `slipway triggers`: the sources runs start from, their last poll and its outcome, recent events with verdicts, schedules. */
import { duration, table, time } from "../../format.js";
import { HttpRuns } from "../../http/client.js";
import { LocalRuns } from "../../runs/local.js";
import { loadSources } from "../../triggers/config.js";
import type { TriggersResponse } from "../../triggers/schemas.js";
import { TriggerService } from "../../triggers/service.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";

export const triggers: Command = {
  name: "triggers",
  summary: "List trigger sources with their last poll, recent events with what each pipeline did, schedules",
  usage: [
    "slipway triggers [--json] [--limit N] [--db PATH [--config FILE] | --server URL [--token T]]",
    "",
    "Each event (a push, a pull request, a comment, a schedule's minute) shows every pipeline's verdict:",
    "the run it started, why it was ignored, or that it awaits approval. Without --server, reads the",
    "database; --config names the server's config file for its sources.",
  ].join("\n"),
  async run(args, io) {
    const { values } = parse(
      args,
      {
        ...connectionOptions,
        json: { type: "boolean" },
        limit: { type: "string" },
        config: { type: "string" },
      },
      0,
    );
    const limit = values.limit === undefined ? undefined : Number(values.limit);
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
      throw new UsageError(`--limit wants a whole number above 0, got "${values.limit}"`);
    const options = limit === undefined ? {} : { limit };
    return withRuns(values, "read", io, async (runs) => {
      let status: TriggersResponse;
      if (runs instanceof HttpRuns) status = await runs.triggers(options);
      else if (runs instanceof LocalRuns) {
        const view = new TriggerService({
          runs,
          store: runs.runtime.storage.triggers(),
          sources: loadSources(values.config),
          dataDir: runs.runtime.dataDir,
        });
        status = await view.status(options);
      } else throw new UsageError("triggers are known to a server or its database");
      return print(io, status, values.json);
    });
  },
};

function print(io: Io, status: TriggersResponse, json: boolean | undefined): number {
  if (json) {
    io.out(`${JSON.stringify(status)}\n`);
    return EXIT.ok;
  }
  const quiet = [status.sources, status.events, status.schedules, status.reports ?? []];
  if (quiet.every((list) => list.length === 0)) {
    io.out("no trigger sources (the server config's `sources:`, docs/triggers.md)\n");
    return EXIT.ok;
  }
  if (status.sources.length > 0)
    io.out(
      `${table([
        ["SOURCE", "KIND", "POLL", "LAST POLL", "OUTCOME", "URL"],
        ...status.sources.map((s) => [
          s.name,
          s.kind,
          `every ${duration(s.pollMs)}`,
          s.lastPollAt === null ? "never" : time(s.lastPollAt),
          s.outcome ?? "-",
          s.url,
        ]),
      ])}\n`,
    );
  if (status.schedules.length > 0)
    io.out(
      `${table([
        ["SCHEDULE", "PIPELINE", "CRON", "TIME ZONE", "LAST FIRED FOR"],
        ...status.schedules.map((s) => [
          s.source,
          s.pipeline,
          s.cron,
          s.timeZone,
          s.lastFiredFor === null ? "never" : time(s.lastFiredFor),
        ]),
      ])}\n`,
    );
  const rows = status.events.flatMap((e) => {
    const verdicts = e.verdicts.length > 0 ? e.verdicts : [undefined];
    return verdicts.map((v) => [
      time(e.seenAt),
      e.source,
      e.summary,
      v?.pipeline ?? "-",
      v === undefined ? "no pipeline" : v.verdict === "started" ? `started ${v.runId}` : v.verdict,
      v?.reason ?? "",
    ]);
  });
  io.out(
    rows.length === 0
      ? "no events yet\n"
      : table([["SEEN", "SOURCE", "EVENT", "PIPELINE", "VERDICT", "WHY"], ...rows]),
  );
  // Reports to forges that failed: the runs are unaffected, but the forge shows a stale status.
  const failed = (status.reports ?? []).filter((r) => r.error !== null);
  if (failed.length > 0)
    io.out(
      `\n${table([
        ["REPORT FAILED", "SOURCE", "PIPELINE", "RUN", "TRIES", "ERROR"],
        ...failed.map((r) => [
          time(r.at),
          r.source,
          r.pipeline,
          r.runId ?? "-",
          `${r.failures}${r.done ? " (gave up)" : ""}`,
          r.error ?? "",
        ]),
      ])}`,
    );
  return EXIT.ok;
}
