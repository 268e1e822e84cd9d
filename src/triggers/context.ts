/** What a pipeline's `event` context reads for a trigger event (docs/triggers.md lists every field). */
import type { TriggerEvent } from "./event.js";

/**
 * The `event` of a run started by `event`. Only what identifies the change goes in (not how or when
 * it arrived), so the same event seen by a webhook and by a poll starts the same run.
 */
export function eventContext(event: TriggerEvent, extra: { command?: string } = {}): Record<string, unknown> {
  const base = { kind: event.kind, source: event.source };
  switch (event.kind) {
    case "push":
      return {
        ...base,
        sha: event.sha,
        ref: event.ref,
        ...(event.branch !== undefined && { branch: event.branch }),
        ...(event.tag !== undefined && { tag: event.tag }),
      };
    case "pull_request":
      return {
        ...base,
        action: event.action,
        sha: event.sha,
        ref: `refs/pull/${event.number}/head`,
        branch: event.head,
        pull_request: {
          number: event.number,
          sha: event.sha,
          base: event.base,
          head: event.head,
          fork: event.fork,
          author: event.author.login,
          url: event.headUrl,
        },
      };
    case "comment":
      return {
        ...base,
        sha: event.pullRequest.sha,
        ref: `refs/pull/${event.pullRequest.number}/head`,
        branch: event.pullRequest.head,
        pull_request: {
          number: event.pullRequest.number,
          sha: event.pullRequest.sha,
          base: event.pullRequest.base,
          head: event.pullRequest.head,
          fork: event.pullRequest.fork,
          url: event.pullRequest.headUrl,
        },
        comment: {
          id: event.id,
          body: event.body,
          author: event.author.login,
          ...(extra.command !== undefined && { command: extra.command }),
        },
      };
    case "schedule":
      return {
        ...base,
        ...(event.sha !== undefined && { sha: event.sha }),
        schedule: { cron: event.cron, time_zone: event.timeZone, minute: event.minute },
      };
  }
}
