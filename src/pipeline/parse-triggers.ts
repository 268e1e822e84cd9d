/**
 * A pipeline's `on:` (what starts its runs) in GitHub Actions' shape: `push`, `pull_request`,
 * `comment` (a command word on a pull request), `schedule` and `manual`. See docs/triggers.md.
 */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { cronMatches, isTimeZone, parseCron } from "../cron.js";
import { closest, listOr } from "../problems.js";
import { describe, type KeyHints, type Reader } from "../yaml-reader.js";
import type {
  CommandFlag,
  CommentTrigger,
  PullRequestAction,
  PullRequestTrigger,
  PushTrigger,
  ScheduleTrigger,
  Triggers,
} from "./model.js";

export const TRIGGER_KEYS = ["push", "pull_request", "comment", "schedule", "manual"] as const;
export const PUSH_KEYS = ["branches", "branches-ignore", "tags", "commits"] as const;
export const PULL_REQUEST_KEYS = ["types", "branches"] as const;
export const COMMENT_KEYS = ["command", "flags"] as const;
export const FLAG_KEYS = ["tier", "inputs"] as const;
export const SCHEDULE_KEYS = ["cron", "time_zone"] as const;

const PR_ACTIONS: readonly PullRequestAction[] = ["opened", "synchronize", "reopened"];
const COMMITS = ["latest", "each"] as const;
/** A command word: `!testme`, `/ci`, `@bot-test`. */
const COMMAND = /^[!/@]?[A-Za-z][A-Za-z0-9_-]*$/;
const FLAG = /^--[A-Za-z][A-Za-z0-9_-]*$/;

const TRIGGER_HINTS: KeyHints = {
  workflow_dispatch: { message: "runs by hand are `manual`", suggestion: "manual" },
  issue_comment: { message: "comment commands are `comment: { command: '!testme' }`", suggestion: "comment" },
  pull_request_target: {
    message: "write `pull_request`: runs of forks' code wait for approval (docs/triggers.md)",
    suggestion: "pull_request",
  },
};
const SCHEDULE_HINTS: KeyHints = {
  timezone: { message: "write `time_zone`", suggestion: "time_zone" },
  tz: { message: "write `time_zone`", suggestion: "time_zone" },
};

/** Parses `on:`; `tiers` are the pipeline's tier names, which comment flags may name. */
export function parseTriggers(r: Reader, node: Node, tiers: readonly string[]): Triggers {
  const triggers: Triggers = { schedule: [], manual: false, pos: r.at(node) };
  // `on: push` and `on: [push, manual]` as in GitHub: each with its defaults.
  if (isScalar(node) || isSeq(node)) {
    for (const item of r.list(node, "`on`", true) ?? []) {
      const name = r.string(item, "an event of `on`");
      if (name === undefined) continue;
      if (name === "push") triggers.push = { commits: "latest", pos: r.at(item) };
      else if (name === "pull_request") triggers.pullRequest = { types: [...PR_ACTIONS], pos: r.at(item) };
      else if (name === "manual") triggers.manual = true;
      else if (name === "comment" || name === "schedule")
        r.report(item, `\`${name}\` needs settings: write it as a key of \`on:\` (docs/triggers.md)`);
      else
        r.report(
          item,
          `unknown event \`${name}\` in \`on\` (events: ${listOr(TRIGGER_KEYS)})`,
          TRIGGER_HINTS[name]?.suggestion ?? closest(name, TRIGGER_KEYS),
        );
    }
    return triggers;
  }
  for (const entry of r.map(node, "`on`", TRIGGER_KEYS, TRIGGER_HINTS)) {
    const value = entry.value;
    const empty = r.isEmpty(value);
    switch (entry.name as (typeof TRIGGER_KEYS)[number]) {
      case "push":
        triggers.push = empty ? { commits: "latest", pos: r.at(entry.key) } : parsePush(r, value);
        break;
      case "pull_request":
        triggers.pullRequest = empty
          ? { types: [...PR_ACTIONS], pos: r.at(entry.key) }
          : parsePullRequest(r, value);
        break;
      case "comment": {
        const comment = parseComment(r, value, tiers);
        if (comment) triggers.comment = comment;
        break;
      }
      case "schedule":
        triggers.schedule = parseSchedule(r, value);
        break;
      case "manual":
        if (empty || (isMap(value) && value.items.length === 0)) triggers.manual = true;
        else triggers.manual = r.boolean(value, "`on.manual`") ?? false;
        break;
    }
  }
  return triggers;
}

/** A list of glob patterns (a single string is a list of one). */
function globs(r: Reader, node: Node, label: string): string[] {
  const out: string[] = [];
  for (const item of r.list(node, label, true) ?? []) {
    const text = r.string(item, `a pattern of ${label}`);
    if (text !== undefined) out.push(text);
  }
  return out;
}

function parsePush(r: Reader, node: Node): PushTrigger {
  const push: PushTrigger = { commits: "latest", pos: r.at(node) };
  const fields = new Map(r.map(node, "`on.push`", PUSH_KEYS).map((e) => [e.name, e]));
  const branches = fields.get("branches");
  const ignore = fields.get("branches-ignore");
  if (branches && ignore)
    r.report(
      ignore.key,
      "`branches` and `branches-ignore` can't both be given: use `!pattern` in `branches`",
    );
  if (branches) push.branches = globs(r, branches.value, "`on.push.branches`");
  if (ignore) push.branchesIgnore = globs(r, ignore.value, "`on.push.branches-ignore`");
  const tags = fields.get("tags");
  if (tags) push.tags = globs(r, tags.value, "`on.push.tags`");
  const commits = fields.get("commits");
  if (commits) {
    const value = r.string(commits.value, "`on.push.commits`");
    if (value === "latest" || value === "each") push.commits = value;
    else if (value !== undefined)
      r.report(
        commits.value,
        `\`on.push.commits\` must be ${listOr(COMMITS)} (one run for the newest commit, or one per commit), got \`${value}\``,
        closest(value, COMMITS),
      );
  }
  return push;
}

function parsePullRequest(r: Reader, node: Node): PullRequestTrigger {
  const pr: PullRequestTrigger = { types: [...PR_ACTIONS], pos: r.at(node) };
  const fields = new Map(r.map(node, "`on.pull_request`", PULL_REQUEST_KEYS).map((e) => [e.name, e]));
  const types = fields.get("types");
  if (types) {
    pr.types = [];
    for (const item of r.list(types.value, "`on.pull_request.types`", true) ?? []) {
      const type = r.string(item, "a type of `on.pull_request.types`");
      if (type === undefined) continue;
      if ((PR_ACTIONS as readonly string[]).includes(type)) pr.types.push(type as PullRequestAction);
      else
        r.report(
          item,
          `pull request type \`${type}\` is not one that starts runs (${listOr(PR_ACTIONS)})`,
          closest(type, PR_ACTIONS),
        );
    }
  }
  const branches = fields.get("branches");
  if (branches) pr.branches = globs(r, branches.value, "`on.pull_request.branches`");
  return pr;
}

function parseComment(r: Reader, node: Node, tiers: readonly string[]): CommentTrigger | undefined {
  // `comment: '!testme'` is the command alone.
  if (isScalar(node)) {
    const command = r.name(node, "`on.comment`", COMMAND, "a command word such as `!testme`");
    return command === undefined ? undefined : { command, flags: {}, pos: r.at(node) };
  }
  const fields = new Map(r.map(node, "`on.comment`", COMMENT_KEYS).map((e) => [e.name, e]));
  if (!isMap(node)) return undefined;
  const commandEntry = fields.get("command");
  if (!commandEntry) {
    r.report(node, "`on.comment` needs `command`: the word a comment starts with, e.g. `command: '!testme'`");
    return undefined;
  }
  const command = r.name(
    commandEntry.value,
    "`on.comment.command`",
    COMMAND,
    "a command word such as `!testme`",
  );
  const flags: Record<string, CommandFlag> = {};
  const flagsEntry = fields.get("flags");
  for (const flag of flagsEntry ? r.map(flagsEntry.value, "`on.comment.flags`") : []) {
    if (!FLAG.test(flag.name)) {
      r.report(flag.key, `flag \`${flag.name}\` must look like \`--extra\``);
      continue;
    }
    if (flag.name === "--input") {
      r.report(flag.key, "`--input k=v` is built in: it sets an input of the run");
      continue;
    }
    const parsed: CommandFlag = { tiers: [], inputs: {} };
    const label = `flag \`${flag.name}\``;
    for (const field of r.map(flag.value, label, FLAG_KEYS)) {
      if (field.name === "tier") {
        for (const item of r.list(field.value, `\`tier\` of ${label}`, true) ?? []) {
          const tier = r.string(item, `a tier of ${label}`);
          if (tier === undefined) continue;
          if (!tiers.includes(tier))
            r.report(
              item,
              `${label} asks for tier \`${tier}\`, which no job has (${tiers.length ? `tiers: ${listOr(tiers, "and")}` : "no job has a `tier`"})`,
              closest(tier, tiers),
            );
          else parsed.tiers.push(tier);
        }
      } else {
        for (const input of r.map(field.value, `\`inputs\` of ${label}`)) {
          const value = isScalar(input.value) ? input.value.value : undefined;
          if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
            parsed.inputs[input.name] = value;
          else
            r.report(
              input.value,
              `input \`${input.name}\` of ${label} must be a plain value, got ${describe(input.value)}`,
            );
        }
      }
    }
    flags[flag.name] = parsed;
  }
  return command === undefined ? undefined : { command, flags, pos: r.at(commandEntry.key) };
}

function parseSchedule(r: Reader, node: Node): ScheduleTrigger[] {
  const out: ScheduleTrigger[] = [];
  for (const item of r.list(node, "`on.schedule`", false) ?? []) {
    const fields = new Map(
      r.map(item, "an entry of `on.schedule`", SCHEDULE_KEYS, SCHEDULE_HINTS).map((e) => [e.name, e]),
    );
    if (!isMap(item)) continue;
    const cronEntry = fields.get("cron");
    if (!cronEntry) {
      r.report(item, "a schedule needs `cron`, e.g. `- cron: '0 3 * * *'`");
      continue;
    }
    const cron = r.string(cronEntry.value, "`cron`");
    let timeZone = "UTC";
    const zone = fields.get("time_zone");
    if (zone) {
      const name = r.string(zone.value, "`time_zone`");
      if (name !== undefined && !isTimeZone(name))
        r.report(
          zone.value,
          `\`time_zone\` \`${name}\` is not a time zone: use an IANA name such as \`Europe/Berlin\` or \`UTC\``,
        );
      else if (name !== undefined) timeZone = name;
    }
    if (cron === undefined) continue;
    try {
      // Matching once proves the line and the zone work together.
      cronMatches(parseCron(cron), 0, timeZone);
      out.push({ cron, timeZone, pos: r.at(cronEntry.value) });
    } catch (error) {
      r.report(cronEntry.value, `\`cron\`: ${(error as Error).message}`);
    }
  }
  return out;
}
