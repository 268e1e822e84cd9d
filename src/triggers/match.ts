/**
 * Whether an event starts a run of a pipeline, by its `on:`; for a comment command, what its flags
 * ask for. Every "no" says why, since each verdict is recorded and shown.
 */
import type { Triggers } from "../pipeline/model.js";
import type { TriggerEvent } from "./event.js";

export type Match =
  | {
      run: true;
      tiers: string[];
      inputs: Record<string, string | number | boolean>;
      /** `commits: each` of a push: one run per commit (oldest first); absent: one run for `sha`. */
      commits?: string[];
      /** The command as understood, e.g. `!testme --extra`. */
      command?: string;
    }
  | { run: false; reason: string };

const no = (reason: string): Match => ({ run: false, reason });

export function matchEvent(on: Triggers | undefined, event: TriggerEvent): Match {
  const yes: Match = { run: true, tiers: [], inputs: {} };
  if (on === undefined) return no("the pipeline has no `on:`");
  switch (event.kind) {
    case "push": {
      const push = on.push;
      if (!push) return no("the pipeline's `on:` has no `push`");
      if (event.tag !== undefined) {
        const tags = push.tags ?? (push.branches || push.branchesIgnore ? [] : ["**"]);
        if (!matchesAny(tags, event.tag)) return no(`tag ${event.tag} matches no \`on.push.tags\``);
      } else if (event.branch !== undefined) {
        const branches = push.branches ?? (push.tags && !push.branchesIgnore ? [] : ["**"]);
        if (!matchesAny(branches, event.branch))
          return no(`branch ${event.branch} matches no \`on.push.branches\``);
        if (push.branchesIgnore && matchesAny(push.branchesIgnore, event.branch))
          return no(`branch ${event.branch} matches \`on.push.branches-ignore\``);
      } else return no(`ref ${event.ref} is neither a branch nor a tag`);
      if (push.commits === "each" && event.commits && event.commits.length > 1)
        return { ...yes, commits: [...event.commits] };
      return yes;
    }
    case "pull_request": {
      const pr = on.pullRequest;
      if (!pr) return no("the pipeline's `on:` has no `pull_request`");
      if (!pr.types.includes(event.action))
        return no(`pull request ${event.action} is not in \`on.pull_request.types\``);
      if (pr.branches && !matchesAny(pr.branches, event.base))
        return no(`target branch ${event.base} matches no \`on.pull_request.branches\``);
      return yes;
    }
    case "comment": {
      const comment = on.comment;
      if (!comment) return no("the pipeline's `on:` has no `comment`");
      return parseCommand(comment, event.body);
    }
    case "schedule": {
      const hit = on.schedule.some((s) => s.cron === event.cron && s.timeZone === event.timeZone);
      return hit ? yes : no(`no \`on.schedule\` entry is ${event.cron} (${event.timeZone})`);
    }
  }
}

/**
 * A comment command: the comment's first line starts with the command word; each flag adds what the
 * pipeline maps it to; `--input k=v` (or `--input=k=v`) sets an input. Anything else is refused.
 */
export function parseCommand(comment: NonNullable<Triggers["comment"]>, body: string): Match {
  const line = body.trim().split(/\r?\n/)[0] ?? "";
  const words = splitWords(line);
  if (words[0] !== comment.command) return no(`the comment does not start with ${comment.command}`);
  const tiers = new Set<string>();
  const inputs: Record<string, string | number | boolean> = {};
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (word === "--input" || word.startsWith("--input=")) {
      const pair = word === "--input" ? words[++i] : word.slice("--input=".length);
      const eq = pair?.indexOf("=") ?? -1;
      if (pair === undefined || eq <= 0) return no("`--input` wants `name=value`");
      inputs[pair.slice(0, eq)] = pair.slice(eq + 1);
      continue;
    }
    const flag = comment.flags[word];
    if (!flag) {
      const known = Object.keys(comment.flags);
      return no(
        `unknown flag ${word} (${known.length ? `flags: ${known.join(", ")}, ` : ""}--input name=value)`,
      );
    }
    for (const tier of flag.tiers) tiers.add(tier);
    Object.assign(inputs, flag.inputs);
  }
  return { run: true, tiers: [...tiers], inputs, command: words.join(" ") };
}

/** Words split at blanks; "double" or 'single' quotes keep blanks in one word. */
function splitWords(line: string): string[] {
  const words: string[] = [];
  for (const match of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g))
    words.push(match[1] ?? match[2] ?? match[3]!);
  return words;
}

/**
 * GitHub's filter patterns: `*` is any text without `/`, `**` any text, `?` one character; a
 * pattern starting with `!` takes matches out again (the last pattern that matches decides).
 */
export function matchesAny(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    if (globRegExp(negated ? pattern.slice(1) : pattern).test(name)) matched = !negated;
  }
  return matched;
}

function globRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      out += ".*";
      i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}
