/**
 * Webhook deliveries from forges: verify the sender over the raw body before anything is parsed,
 * name the delivery (for replay protection), and turn a verified payload into trigger events.
 * Pure functions: the HTTP route records the delivery and hands the events to the dispatcher.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { TriggerEvent } from "./event.js";

/** The forge a source is, which decides how its deliveries are signed and shaped. */
export type ForgeKind = "github" | "gitea" | "forgejo" | "gitlab" | "git";

/** Header lookup by lowercase name (Hono's `c.req.header`, a Fetch `Headers`...). */
export type HeaderOf = (name: string) => string | undefined;

export type Verification = { ok: true } | { ok: false; reason: string };

/**
 * Checks that a delivery comes from the forge: GitHub signs the raw body with HMAC-SHA256
 * (`X-Hub-Signature-256: sha256=<hex>`), Gitea and Forgejo likewise (`X-Gitea-Signature` /
 * `X-Forgejo-Signature: <hex>`); GitLab signs nothing and sends the shared secret itself in
 * `X-Gitlab-Token`. Every comparison takes the same time whatever the input.
 */
export function verifyDelivery(
  kind: ForgeKind,
  secret: string,
  header: HeaderOf,
  body: Uint8Array,
): Verification {
  if (kind === "git") return { ok: false, reason: "a plain git source takes no webhooks: it is polled" };
  if (kind === "gitlab") {
    const token = header("x-gitlab-token");
    if (token === undefined) return { ok: false, reason: "missing X-Gitlab-Token" };
    return sameSecret(token, secret) ? { ok: true } : { ok: false, reason: "X-Gitlab-Token does not match" };
  }
  const name = kind === "github" ? "x-hub-signature-256" : `x-${kind}-signature`;
  // Forgejo still sends Gitea's header too; either verifies.
  const sent = header(name) ?? (kind === "forgejo" ? header("x-gitea-signature") : undefined);
  if (sent === undefined) return { ok: false, reason: `missing ${headerName(name)}` };
  const hex = kind === "github" ? (sent.startsWith("sha256=") ? sent.slice(7) : undefined) : sent;
  if (hex === undefined || !/^[0-9a-f]{64}$/i.test(hex))
    return { ok: false, reason: `${headerName(name)} is not an HMAC-SHA256 signature` };
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(Buffer.from(hex, "hex"), expected)
    ? { ok: true }
    : { ok: false, reason: `${headerName(name)} does not match the body` };
}

/** The forge's id of a delivery: the same for a redelivery, so a replay starts nothing. */
export function deliveryId(kind: ForgeKind, header: HeaderOf): string | undefined {
  switch (kind) {
    case "github":
      return header("x-github-delivery");
    case "gitea":
      return header("x-gitea-delivery") ?? header("x-forgejo-delivery");
    case "forgejo":
      return header("x-forgejo-delivery") ?? header("x-gitea-delivery");
    case "gitlab":
      return header("x-gitlab-event-uuid");
    case "git":
      return undefined;
  }
}

/** Signs a body the way a forge does; for tests and for `curl` examples in the docs. */
export function signBody(
  kind: Exclude<ForgeKind, "git" | "gitlab">,
  secret: string,
  body: string | Uint8Array,
) {
  const hex = createHmac("sha256", secret).update(body).digest("hex");
  return kind === "github" ? `sha256=${hex}` : hex;
}

/**
 * A comment seen in a delivery whose pull request the payload does not describe fully (GitHub's
 * `issue_comment` carries no head commit): the forge is asked for it before the event is complete.
 */
export interface CommentOnPullRequest {
  kind: "comment-lookup";
  id: string;
  body: string;
  author: { login: string; association?: string };
  number: number;
}

export type ParsedDelivery =
  | { events: TriggerEvent[]; lookups: CommentOnPullRequest[]; ignored?: undefined }
  | { events: []; lookups: []; ignored: string };

/**
 * What a verified delivery asks for, as trigger events. Anything Slipway does not start runs for
 * (a ping, a closed pull request, an edited comment, a branch deletion) is `ignored`, with why.
 */
export function parseDelivery(
  kind: ForgeKind,
  source: string,
  header: HeaderOf,
  payload: unknown,
  now: number,
): ParsedDelivery {
  const delivery = deliveryId(kind, header) ?? "";
  const base = { source, at: now, arrival: { via: "webhook" as const, delivery } };
  const p = record(payload);
  if (p === undefined) return ignore("the body is not a JSON object");
  if (kind === "gitlab") return parseGitlab(header("x-gitlab-event") ?? "", p, base);
  const event =
    kind === "github"
      ? header("x-github-event")
      : (header(`x-${kind}-event`) ?? header("x-gitea-event") ?? header("x-forgejo-event"));
  switch (event) {
    case "push":
      return pushOf(p, base);
    case "pull_request":
    case "pull_request_sync":
      return pullRequestOf(p, base);
    case "issue_comment":
      return commentOf(kind, p, base);
    case undefined:
      return ignore("no event header");
    default:
      return ignore(`${event} events start nothing`);
  }
}

type Base = Pick<TriggerEvent, "source" | "at" | "arrival">;
type Json = Record<string, unknown>;

const ZERO_SHA = /^0+$/;

function pushOf(p: Json, base: Base): ParsedDelivery {
  const ref = text(p.ref);
  const sha = text(p.after);
  if (ref === undefined || sha === undefined) return ignore("a push without ref or after");
  if (p.deleted === true || ZERO_SHA.test(sha)) return ignore(`${ref} was deleted`);
  return found({ ...base, kind: "push", ...refNames(ref), ref, sha, ...optional("before", text(p.before)) });
}

/** GitHub `opened`/`synchronize`/`reopened`; Gitea and Forgejo say `synchronized`. */
function pullRequestOf(p: Json, base: Base): ParsedDelivery {
  const actions: Record<string, "opened" | "synchronize" | "reopened"> = {
    opened: "opened",
    synchronize: "synchronize",
    synchronized: "synchronize",
    reopened: "reopened",
  };
  const action = actions[text(p.action) ?? ""];
  if (action === undefined) return ignore(`pull request ${String(p.action)} starts nothing`);
  const pr = record(p.pull_request);
  const head = record(pr?.head);
  const baseRef = record(pr?.base);
  const number = num(pr?.number) ?? num(p.number);
  const sha = text(head?.sha);
  if (pr === undefined || number === undefined || sha === undefined)
    return ignore("a pull request without head");
  const headRepo = record(head?.repo);
  const baseRepo = record(baseRef?.repo) ?? record(p.repository);
  const user = record(pr.user);
  return found({
    ...base,
    kind: "pull_request",
    action,
    number,
    sha,
    base: text(baseRef?.ref) ?? "",
    head: text(head?.ref) ?? "",
    fork: isFork(headRepo, baseRepo),
    headUrl: text(headRepo?.clone_url) ?? "",
    author: { login: text(user?.login) ?? "", ...optional("association", text(pr.author_association)) },
  });
}

function commentOf(kind: ForgeKind, p: Json, base: Base): ParsedDelivery {
  if (text(p.action) !== "created") return ignore(`a comment ${String(p.action)} starts nothing`);
  const issue = record(p.issue);
  const comment = record(p.comment);
  const user = record(comment?.user);
  const number = num(issue?.number);
  const id = comment?.id;
  if (issue === undefined || comment === undefined || number === undefined || id === undefined)
    return ignore("a comment without issue or id");
  // GitHub marks a pull request's issue with `issue.pull_request`; Gitea also sends `is_pull`.
  if (issue.pull_request == null && p.is_pull !== true)
    return ignore("a comment on an issue, not a pull request");
  const author = {
    login: text(user?.login) ?? "",
    ...optional("association", text(comment.author_association)),
  };
  const pr = record(p.pull_request);
  const head = record(pr?.head);
  const sha = text(head?.sha);
  if (kind !== "github" && pr !== undefined && sha !== undefined) {
    return found({
      ...base,
      kind: "comment",
      id: String(id),
      body: text(comment.body) ?? "",
      author,
      pullRequest: {
        number,
        sha,
        base: text(record(pr.base)?.ref) ?? "",
        head: text(head?.ref) ?? "",
        fork: isFork(record(head?.repo), record(record(pr.base)?.repo) ?? record(p.repository)),
        headUrl: text(record(head?.repo)?.clone_url) ?? "",
      },
    });
  }
  return {
    events: [],
    lookups: [{ kind: "comment-lookup", id: String(id), body: text(comment.body) ?? "", author, number }],
  };
}

/** GitLab: `Push Hook`, `Tag Push Hook`, `Merge Request Hook`, `Note Hook`. */
function parseGitlab(event: string, p: Json, base: Base): ParsedDelivery {
  const kind = text(p.object_kind);
  if (kind === "push" || kind === "tag_push") {
    const ref = text(p.ref);
    const sha = text(p.checkout_sha) ?? text(p.after);
    if (ref === undefined || sha === undefined || ZERO_SHA.test(text(p.after) ?? ""))
      return ignore(`${ref ?? "a ref"} was deleted`);
    return found({
      ...base,
      kind: "push",
      ...refNames(ref),
      ref,
      sha,
      ...optional("before", text(p.before)),
    });
  }
  const user = record(p.user);
  const author = { login: text(user?.username) ?? "" };
  if (kind === "merge_request") {
    const mr = record(p.object_attributes);
    const actions: Record<string, "opened" | "synchronize" | "reopened"> = {
      open: "opened",
      reopen: "reopened",
      update: "synchronize",
    };
    const action = actions[text(mr?.action) ?? ""];
    // An `update` that moved no commits (a title edit) has no `oldrev`.
    if (action === undefined || (action === "synchronize" && mr?.oldrev === undefined))
      return ignore(`merge request ${String(mr?.action)} starts nothing`);
    const sha = text(record(mr?.last_commit)?.id);
    const number = num(mr?.iid);
    if (mr === undefined || sha === undefined || number === undefined)
      return ignore("a merge request without head");
    return found({ ...base, kind: "pull_request", action, number, sha, ...mergeRequestSides(mr), author });
  }
  if (kind === "note") {
    const note = record(p.object_attributes);
    const mr = record(p.merge_request);
    if (text(note?.noteable_type) !== "MergeRequest" || mr === undefined)
      return ignore("a note on something other than a merge request");
    const sha = text(record(mr.last_commit)?.id);
    const number = num(mr.iid);
    if (note === undefined || note.id === undefined || sha === undefined || number === undefined)
      return ignore("a note without id or merge request head");
    return found({
      ...base,
      kind: "comment",
      id: String(note.id),
      body: text(note.note) ?? "",
      author,
      pullRequest: { number, sha, ...mergeRequestSides(mr) },
    });
  }
  return ignore(`${event || String(kind)} events start nothing`);
}

function mergeRequestSides(mr: Json) {
  return {
    base: text(mr.target_branch) ?? "",
    head: text(mr.source_branch) ?? "",
    fork: mr.source_project_id !== undefined && mr.source_project_id !== mr.target_project_id,
    headUrl: text(record(mr.source)?.git_http_url) ?? "",
  };
}

function isFork(head: Json | undefined, base: Json | undefined): boolean {
  if (head === undefined) return false;
  const name = (r: Json | undefined) => text(r?.full_name) ?? String(r?.id ?? "");
  return head.fork === true || (base !== undefined && name(head) !== name(base));
}

function refNames(ref: string): { branch?: string; tag?: string } {
  if (ref.startsWith("refs/heads/")) return { branch: ref.slice("refs/heads/".length) };
  if (ref.startsWith("refs/tags/")) return { tag: ref.slice("refs/tags/".length) };
  return {};
}

function found(event: TriggerEvent): ParsedDelivery {
  return { events: [event], lookups: [] };
}

function ignore(why: string): ParsedDelivery {
  return { events: [], lookups: [], ignored: why };
}

function record(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function headerName(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** Equal secrets, compared in time independent of where they differ (lengths hashed to match). */
function sameSecret(sent: string, secret: string): boolean {
  const digest = (s: string) => createHmac("sha256", "slipway").update(s).digest();
  return timingSafeEqual(digest(sent), digest(secret));
}
