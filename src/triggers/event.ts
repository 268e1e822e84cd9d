/**
 * What happened at a source (a push, a pull request, a comment, a schedule's minute), normalized
 * across forges, so that one dispatcher starts runs from polls and from webhooks alike. `key` is the
 * event's durable identity: the same change seen by a webhook and by a poll has the same key, and a
 * key is acted on once.
 */

export type TriggerKind = "push" | "pull_request" | "comment" | "schedule";

/** How the event reached us. */
export type Arrival = { via: "poll" } | { via: "webhook"; delivery: string } | { via: "clock" };

export interface PushEvent {
  kind: "push";
  /** Full ref, `refs/heads/main` or `refs/tags/v1.2`. */
  ref: string;
  /** Set for a branch ref; `tag` for a tag ref. */
  branch?: string;
  tag?: string;
  sha: string;
  /** The commit the ref pointed at before, when known (all zeros for a new ref). */
  before?: string;
  /**
   * The commits the push added, oldest first and ending with `sha`, when known (a forge's payload, or
   * `git log` in the mirror): a pipeline with `commits: each` runs once per commit.
   */
  commits?: string[];
}

export interface PullRequestEvent {
  kind: "pull_request";
  action: "opened" | "synchronize" | "reopened";
  number: number;
  /** The head commit, the one a run checks out. */
  sha: string;
  /** Branch the pull request wants to merge into. */
  base: string;
  /** Branch of the head commit, in the head repository. */
  head: string;
  /** The head repository is a fork, not the source's own repository. */
  fork: boolean;
  /** Clone URL of the head repository (the fork's, for a fork). */
  headUrl: string;
  author: Person;
}

export interface CommentEvent {
  kind: "comment";
  /** The forge's id of the comment: one comment is one event, however it is seen. */
  id: string;
  body: string;
  author: Person;
  /** The pull request the comment is on, with its head commit as the forge reports it now. */
  pullRequest: {
    number: number;
    sha: string;
    base: string;
    head: string;
    fork: boolean;
    headUrl: string;
    /**
     * A poll found the comment in the same look as a new head (or a new pull request): whether it
     * was written about this head or the one before cannot be told, so it approves nothing.
     */
    moved?: boolean;
  };
}

export interface ScheduleEvent {
  kind: "schedule";
  cron: string;
  timeZone: string;
  /** The minute it fires for (epoch ms), not when it was noticed. */
  minute: number;
  /** For a source's pipeline: the commit its default branch pointed at, which the run checks out. */
  sha?: string;
}

/** An author as the forge reports them; `association` is GitHub's `author_association` where sent. */
export interface Person {
  login: string;
  association?: string;
}

export type TriggerEvent = (PushEvent | PullRequestEvent | CommentEvent | ScheduleEvent) & {
  /** The configured source's name (a schedule's: its pipeline's name). */
  source: string;
  /** When it happened at the source, or when it was first seen (epoch ms). */
  at: number;
  arrival: Arrival;
};

/** The pull request an event is about (opened or pushed to, or commented on), if any. */
export function pullRequestOf(event: TriggerEvent): number | undefined {
  if (event.kind === "pull_request") return event.number;
  return event.kind === "comment" ? event.pullRequest.number : undefined;
}

/**
 * The durable identity of an event. A pull request's opened/synchronize/reopened for one head commit
 * is one key, so a webhook's `synchronize` and a poll that sees the new head start one run.
 */
export function eventKey(event: TriggerEvent): string {
  switch (event.kind) {
    case "push":
      return `${event.source}:push:${event.ref}:${event.sha}`;
    case "pull_request":
      return `${event.source}:pr:${event.number}:${event.sha}`;
    case "comment":
      return `${event.source}:comment:${event.id}`;
    case "schedule":
      return `${event.source}:schedule:${event.cron}:${event.minute}`;
  }
}
