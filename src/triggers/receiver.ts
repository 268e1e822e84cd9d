/**
 * `POST /hooks/{source}`: a forge's delivery, answered within a second. The signature (or GitLab's
 * token) is checked over the raw body before anything is parsed; the delivery id is recorded durably
 * so a replay starts nothing; the events are recorded, and the work (asking the forge for what a
 * payload lacks, starting runs) happens after the answer. Polling stays the primary path: a delivery
 * lost in a crash is found by the next poll, under the same event key.
 */
import { jsonTooDeep, tooDeepMessage } from "../json.js";
import type { TriggerEvent } from "./event.js";
import type { Forge } from "./forges/forge.js";
import {
  type CommentOnPullRequest,
  deliveryId,
  type ForgeKind,
  type HeaderOf,
  parseDelivery,
  verifyDelivery,
} from "./webhooks.js";

export interface HookSource {
  kind: ForgeKind;
  /** The webhook secret; a source without one takes no webhooks. */
  secret: string | undefined;
  /** Asked for what a payload lacks (GitHub comments carry no head commit). */
  forge: Pick<Forge, "pullRequest"> | undefined;
}

export interface HookDeps {
  source(name: string): HookSource | undefined;
  /** Records a delivery id durably; false when it was recorded before (a replay). */
  firstDelivery(source: string, delivery: string): Promise<boolean>;
  /**
   * Told of a verified delivery's events before anything is recorded (a replay too): the mirror's
   * fetch of their commits may start now. Never fails.
   */
  prefetch(events: readonly TriggerEvent[]): void;
  /** Records events durably and starts what they ask for, later. */
  deliver(events: readonly TriggerEvent[]): Promise<void>;
  /** Where work after the answer reports a failure (it cannot fail the request any more). */
  onLateError(error: unknown): void;
  now(): number;
}

export interface HookAnswer {
  status: 200 | 202 | 400 | 401 | 404;
  body: { message: string; events?: number; replayed?: boolean; ignored?: string };
}

export async function receiveHook(
  deps: HookDeps,
  name: string,
  header: HeaderOf,
  body: Uint8Array,
): Promise<HookAnswer> {
  const source = deps.source(name);
  if (source === undefined) return { status: 404, body: { message: `no source named "${name}"` } };
  if (source.secret === undefined)
    return {
      status: 401,
      body: { message: `source "${name}" has no webhook secret configured: it is only polled` },
    };
  const verified = verifyDelivery(source.kind, source.secret, header, body);
  if (!verified.ok) return { status: 401, body: { message: verified.reason } };
  const delivery = deliveryId(source.kind, header);
  if (delivery === undefined || delivery === "")
    return { status: 400, body: { message: "the delivery has no delivery id header" } };
  const text = Buffer.from(body).toString("utf8");
  if (jsonTooDeep(text) !== undefined)
    return { status: 400, body: { message: tooDeepMessage("the delivery") } };
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { status: 400, body: { message: "the body is not JSON (send deliveries as application/json)" } };
  }
  const parsed = parseDelivery(source.kind, name, header, payload, deps.now());
  // What a run of these events will check out starts coming into the mirror now, beside the records.
  if (parsed.events.length > 0) deps.prefetch(parsed.events);
  if (!(await deps.firstDelivery(name, delivery)))
    return { status: 200, body: { message: `delivery ${delivery} was received before`, replayed: true } };
  if (parsed.ignored !== undefined)
    return { status: 200, body: { message: "nothing to do", ignored: parsed.ignored } };
  if (parsed.events.length > 0) await deps.deliver(parsed.events);
  if (parsed.lookups.length > 0) void completeLater(deps, source, name, delivery, parsed.lookups);
  const events = parsed.events.length + parsed.lookups.length;
  return { status: 202, body: { message: `accepted ${events} event${events === 1 ? "" : "s"}`, events } };
}

/** GitHub comments: the pull request's head, from the forge, then the event. */
async function completeLater(
  deps: HookDeps,
  source: HookSource,
  name: string,
  delivery: string,
  lookups: readonly CommentOnPullRequest[],
): Promise<void> {
  try {
    const events: TriggerEvent[] = [];
    for (const lookup of lookups) {
      const pr = await source.forge?.pullRequest(lookup.number);
      if (pr === undefined) continue;
      const { author: _prAuthor, ...pullRequest } = pr;
      events.push({
        source: name,
        at: deps.now(),
        arrival: { via: "webhook", delivery },
        kind: "comment",
        id: lookup.id,
        body: lookup.body,
        author: lookup.author,
        pullRequest,
      });
    }
    if (events.length === 0) return;
    deps.prefetch(events);
    await deps.deliver(events);
  } catch (error) {
    deps.onLateError(error);
  }
}
