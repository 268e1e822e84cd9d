/**
 * One poll of a forge: which pull requests are new or moved since the last poll, and which comments
 * were written on them, as trigger events. The first poll only takes a baseline (no flood of runs for
 * everything already open). Events are keyed (see `eventKey`), so the overlap between polls, and a
 * webhook that saw the same change, start nothing twice.
 */
import type { TriggerEvent } from "../event.js";
import type { Forge, PullRequestInfo } from "./forge.js";

export interface ForgePollState {
  /** Head commit of each open pull request at the last poll, by number. */
  heads: Record<string, string>;
  /** Newest comment time seen (epoch ms). */
  commentsSeen: number;
}

/** Comments are asked for again this far back, in case the forge's clock and ours disagree. */
const COMMENT_OVERLAP_MS = 5 * 60_000;

export async function pollForge(
  forge: Forge,
  source: string,
  state: ForgePollState | undefined,
  now: number,
): Promise<{ events: TriggerEvent[]; state: ForgePollState }> {
  const open = await forge.openPullRequests();
  const heads = Object.fromEntries(open.map((pr) => [String(pr.number), pr.sha]));
  if (state === undefined) return { events: [], state: { heads, commentsSeen: now } };
  const base = { source, at: now, arrival: { via: "poll" as const } };
  const events: TriggerEvent[] = [];
  for (const pr of open) {
    const before = state.heads[String(pr.number)];
    if (before === pr.sha) continue;
    events.push({
      ...base,
      kind: "pull_request",
      action: before === undefined ? "opened" : "synchronize",
      ...pr,
    });
  }
  const byNumber = new Map<number, PullRequestInfo>(open.map((pr) => [pr.number, pr]));
  const comments = await forge.commentsSince(state.commentsSeen - COMMENT_OVERLAP_MS, open);
  let commentsSeen = state.commentsSeen;
  for (const comment of comments) {
    const pr = byNumber.get(comment.number);
    if (pr === undefined) continue;
    commentsSeen = Math.max(commentsSeen, comment.at);
    const { author: _prAuthor, ...pullRequest } = pr;
    // The head moved since the last look: the comment may be about the head before (an approval of it).
    const moved = state.heads[String(pr.number)] !== pr.sha;
    events.push({
      ...base,
      kind: "comment",
      id: comment.id,
      body: comment.body,
      author: comment.author,
      pullRequest: { ...pullRequest, number: pr.number, ...(moved && { moved }) },
    });
  }
  return { events, state: { heads, commentsSeen } };
}
