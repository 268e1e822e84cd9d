/**
 * The server's audit log of mutating requests (who, what, when, the answer's status), and the
 * `Idempotency-Key` of requests whose answer can be replayed (signals): a repeat with the same key is
 * answered from the log instead of acting twice.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { SlipwayError } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import type { AuditLog } from "../runs/service.js";
import type { AuditRecord } from "../storage/types.js";
import type { Caller, RouteMatch } from "./auth.js";

/** What a keyed request answered, kept so a repeat gets the same answer. */
export interface Replay {
  /** The request's route, path and body, hashed: the same key with another request is refused. */
  fingerprint: string;
  body: Json;
}

/** What the log needs of a request to record it. */
export interface Requested {
  caller: Caller;
  method: string;
  /** Under the API prefix. */
  path: string;
  match: RouteMatch | undefined;
  status: number;
  key: string | undefined;
  /** The run it acted on, when the route does not name it (a submission). */
  run?: string | undefined;
  replay?: Replay | undefined;
}

/** How many records with one key are looked through for a replayable one. */
const KEY_LOOKBACK = 50;

export class RequestLog {
  /** Keyed requests in flight or not yet recorded: a concurrent repeat waits for the first. */
  readonly #pending = new Map<string, Promise<Replay>>();

  constructor(
    private readonly log: AuditLog | undefined,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the log is kept (the server's storage can hold it). */
  get kept(): boolean {
    return this.log !== undefined;
  }

  /** Records a mutating request. A failure to record is logged: the request has been answered. */
  async record(request: Requested): Promise<void> {
    if (!this.log) return;
    try {
      await this.log.record({
        at: this.now(),
        actor: request.caller.name,
        method: request.method,
        route: request.match?.rule.route ?? request.path,
        path: request.path,
        runId: request.run ?? request.match?.params.id ?? null,
        status: request.status,
        key: request.key ?? null,
        replay: request.replay ? (request.replay as unknown as JsonObject) : null,
      });
    } catch (error) {
      this.logger.error({ err: error, path: request.path }, "cannot record the request in the audit log");
    }
  }

  /** The request is recorded (or failed): a repeat of its key now finds it in the log. */
  settled(key: string | undefined): void {
    if (key !== undefined) this.#pending.delete(key);
  }

  /**
   * Answers a keyed request once: a repeat of `key` (in flight here, or recorded) gets the first
   * answer without `act` running again; the key with another request is a conflict.
   */
  async once(key: string, route: string, request: unknown, act: () => Promise<Json>): Promise<Replay> {
    const fingerprint = createHash("sha256")
      .update(JSON.stringify([route, request]))
      .digest("hex");
    const check = (replay: Replay): Replay => {
      if (replay.fingerprint !== fingerprint)
        throw new SlipwayError(
          "idempotency_conflict",
          `Idempotency-Key "${key}" was already used for another request; use a new key for a different one`,
        );
      return replay;
    };
    const pending = this.#pending.get(key);
    if (pending) return check(await pending);
    const answer = (async (): Promise<Replay> => {
      const earlier = await this.#recorded(key, route);
      if (earlier) return earlier;
      return { fingerprint, body: await act() };
    })();
    this.#pending.set(key, answer);
    return check(await answer);
  }

  /** The newest replayable answer recorded for the key on this route. */
  async #recorded(key: string, route: string): Promise<Replay | undefined> {
    if (!this.log) return undefined;
    const records = await this.log.list({ key, limit: KEY_LOOKBACK });
    const found = records.find((r: AuditRecord) => r.route === route && r.status < 300 && r.replay !== null);
    return found?.replay as unknown as Replay | undefined;
  }
}
