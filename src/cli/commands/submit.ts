/**
 * `slipway submit`: queue a run of a pipeline file on a server and print its id; `--follow` shows it
 * as `slipway run` does (live table, plain lines or JSON events, then the summary and exit code).
 */
import { resolve } from "node:path";
import type { RunDetail, SubmitRequest, SubmitResponse } from "../../server/schemas.js";
import { type Client, remote, runPath, serverClient, serverOptions } from "../client.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { summaryText, viewMode } from "../foreground.js";
import { exitCodeOf, onInterrupt } from "../session.js";
import { createView } from "../view.js";
import { readSource } from "./run.js";

export const submitOptions = {
  ...serverOptions,
  input: { type: "string", short: "i", multiple: true },
  tier: { type: "string", multiple: true },
  name: { type: "string" },
  json: { type: "boolean" },
} as const;

export const submit: Command = {
  name: "submit",
  summary: "Queue a run of a pipeline file on a server (--server or SLIPWAY_SERVER) and print its id",
  usage: [
    "slipway submit FILE [--input NAME=VALUE]... [--tier NAME]... [--name RUN_NAME] [--json] [--follow]",
    "               [--server URL] [--token TOKEN]",
    "",
    'Prints the run id (--json: {"id","name","pipeline","jobs"}). --follow shows the run as',
    "slipway run does and exits with its exit code; Ctrl-C cancels the run (twice: stop following).",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(
      args,
      { ...submitOptions, follow: { type: "boolean", short: "f" } },
      1,
    );
    const file = positionals[0];
    if (file === undefined) throw new UsageError("submit needs a pipeline file");
    const client = serverClient(values);
    if (!client) throw new UsageError("submit needs a server: --server URL or SLIPWAY_SERVER");
    return submitFile(client, file, values, values.follow === true, io);
  },
};

/** Sends the file to the server; with `follow`, follows the run to its end (what `slipway run --server` does). */
export async function submitFile(
  client: Client,
  file: string,
  values: { input?: string[]; tier?: string[]; name?: string; json?: boolean },
  follow: boolean,
  io: Io,
): Promise<number> {
  const source = readSource(file, io);
  if (source === undefined) return EXIT.usage;
  const body: SubmitRequest = {
    // The absolute path: jobs run in the file's directory, on the server's machine.
    file: { name: resolve(file), source },
    inputs: parseInputs(values.input ?? []),
    tiers: values.tier ?? [],
    ...(values.name !== undefined && { name: values.name }),
  };
  return remote(io, async () => {
    const run = await client.json<SubmitResponse>("POST", "/runs", body);
    const mode = viewMode(values.json);
    if (!follow) {
      io.out(values.json ? `${JSON.stringify(run)}\n` : `${run.id}\n`);
      return EXIT.ok;
    }
    io.out(
      mode === "json"
        ? `${JSON.stringify({ id: run.id, name: run.name, pipeline: run.pipeline })}\n`
        : `run ${run.id}${run.name ? ` (${run.name})` : ""}: ${run.pipeline}, ${run.jobs} jobs\n`,
    );
    return followRemote(client, run.id, 0, values.json, io);
  });
}

/**
 * Shows a run's events from the server (after seq `after`) until it ends, then its summary; the
 * first interrupt cancels the run (its undos run on the server), as for a run in the foreground.
 */
export async function followRemote(
  client: Client,
  id: string,
  after: number,
  json: boolean | undefined,
  io: Io,
): Promise<number> {
  const mode = viewMode(json);
  const first = await client.json<RunDetail>("GET", runPath(id));
  const plan = first.plan ?? { steps: [], excluded: [] };
  const view = createView(mode, io, new Map([[id, plan]]));
  let interrupted = false;
  const uninstall = onInterrupt((signal) => {
    interrupted = true;
    void client.json("POST", runPath(id, "/cancel"), { reason: `interrupted (${signal})` }).catch(() => {});
  }, io);
  try {
    await client.events(id, after, (event) => view.event(event));
    view.close();
    const final = await client.json<RunDetail>("GET", runPath(id));
    if (mode !== "json") io.out(summaryText(final, plan));
    return exitCodeOf(final.status, interrupted);
  } finally {
    view.close();
    uninstall();
  }
}

/** `--input tag=v1 --input multiarch=true`: values stay strings; the pipeline's input types decide. */
export function parseInputs(pairs: readonly string[]): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--input wants NAME=VALUE, got "${pair}"`);
    inputs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return inputs;
}
