/**
 * Changes told across processes with PostgreSQL's LISTEN/NOTIFY: a write another executor polls for
 * (a signal, a cancel request) notifies, in its own transaction, so the notice arrives only if it
 * commits; each process keeps one connection listening and wakes its executor at once. Notices of
 * other schemas of the same database are ignored. The listeners are called once the connection
 * listens (a notice may have been missed before), and again each time it is made again, with
 * backoff, after it drops.
 */
import pg from "pg";

/** The channel every Slipway database notifies on; the payload names the schema ("" for the default). */
export const CHANGES_CHANNEL = "slipway_changes";

/** The channel of lock changes (a slot freed, a request queued): only lock waiters listen. */
export const LOCKS_CHANNEL = "slipway_locks";

export const NOTIFY_CHANGE = "SELECT pg_notify($1, $2)";

const RETRY_MS = [100, 250, 500, 1_000, 2_000, 5_000];

export class ChangeListener {
  readonly #config: pg.ClientConfig;
  readonly #payload: string;
  readonly #channel: string;
  readonly #listeners = new Set<() => void>();
  #client: pg.Client | undefined;
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(config: pg.ClientConfig, schema: string | undefined, channel = CHANGES_CHANNEL) {
    this.#config = config;
    this.#payload = schema ?? "";
    this.#channel = channel;
  }

  /** Calls `listener` on each change of this schema until the returned function is called. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1) this.#connect();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#disconnect();
    };
  }

  close(): void {
    this.#stopped = true;
    this.#disconnect();
  }

  #connect(): void {
    if (this.#stopped || this.#client || this.#listeners.size === 0) return;
    const client = new pg.Client(this.#config);
    this.#client = client;
    const lost = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      client.end().catch(() => {});
      if (this.#stopped || this.#listeners.size === 0) return;
      const delay = RETRY_MS[Math.min(this.#failures++, RETRY_MS.length - 1)]!;
      this.#retry = setTimeout(() => this.#connect(), delay);
      this.#retry.unref();
    };
    client.on("error", lost);
    client.on("end", lost);
    client.on("notification", (notice) => {
      if (notice.channel === this.#channel && (notice.payload ?? "") === this.#payload) this.#tell();
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${this.#channel}`))
      .then(() => {
        if (this.#client !== client) return;
        // Anything written while no connection listened was not told: look now. That includes the
        // first connection, whose LISTEN a busy database may answer only after a subscriber's
        // first write and another process's answer to it (a run parked, then signalled).
        this.#failures = 0;
        this.#tell();
      }, lost);
  }

  #disconnect(): void {
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    client?.end().catch(() => {});
  }

  #tell(): void {
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch {
        // A listener's failure is its own.
      }
    }
  }
}
