/**
 * HTTP to a forge's REST API: conditional GETs (an unchanged answer costs a 304, which GitHub does
 * not count against the rate limit), a timeout on every request, and errors sorted into what a poller
 * needs to know: retry later (and when), or fix the configuration.
 */

export class ForgeError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the forge could not be reached. */
    readonly status: number,
    /** When the forge says to come back (rate limits), in ms from now. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ForgeError";
  }

  /** Rate-limited, down or unreachable: back off and poll again. Otherwise the request itself is wrong. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500 || this.retryAfterMs !== undefined;
  }
}

/**
 * Runs a check the token may not be allowed to make (a permission API to a read-only token): a
 * refusal (401, 403 that is no rate limit) is "cannot tell", undefined; anything else is thrown.
 */
export async function unlessRefused<T>(check: () => Promise<T>): Promise<T | undefined> {
  try {
    return await check();
  } catch (error) {
    if (error instanceof ForgeError && (error.status === 401 || error.status === 403) && !error.transient)
      return undefined;
    throw error;
  }
}

export interface ForgeHttpOptions {
  /** The API root, e.g. `https://api.github.com` or `https://gitea.example/api/v1`. */
  root: string;
  /** Headers that authenticate (per forge: `Authorization: Bearer`, `token`, `PRIVATE-TOKEN`). */
  auth: Record<string, string>;
  timeoutMs?: number;
  /** Injectable for tests; default the global fetch. */
  fetch?: typeof fetch;
  now?: () => number;
}

interface Cached {
  etag: string;
  body: unknown;
}

export class ForgeHttp {
  readonly #options: ForgeHttpOptions;
  readonly #cache = new Map<string, Cached>();
  /** Requests answered 304 from the cache (what an idle poll costs). */
  notModified = 0;

  constructor(options: ForgeHttpOptions) {
    this.#options = options;
  }

  /** GETs `path` (relative to the root) as JSON; a 404 is `undefined`. Sends the last ETag seen for it. */
  async get<T>(path: string): Promise<T | undefined> {
    const url = this.#options.root.replace(/\/$/, "") + path;
    const cached = this.#cache.get(url);
    const response = await this.#send(url, {
      method: "GET",
      headers: { ...(cached && { "if-none-match": cached.etag }) },
    });
    if (response.status === 304 && cached) {
      this.notModified++;
      return cached.body as T;
    }
    if (response.status === 404) return undefined;
    await this.#check(response, "GET", path);
    const body = (await response.json()) as T;
    const etag = response.headers.get("etag");
    if (etag) this.#cache.set(url, { etag, body });
    return body;
  }

  /** POSTs JSON to `path`; the forge's answer is returned parsed (or null when empty). */
  async post<T>(path: string, body: unknown): Promise<T | null> {
    const url = this.#options.root.replace(/\/$/, "") + path;
    const response = await this.#send(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await this.#check(response, "POST", path);
    const text = await response.text();
    return text === "" ? null : (JSON.parse(text) as T);
  }

  async #send(url: string, init: RequestInit): Promise<Response> {
    const doFetch = this.#options.fetch ?? fetch;
    try {
      return await doFetch(url, {
        ...init,
        headers: {
          accept: "application/json",
          ...this.#options.auth,
          ...(init.headers as Record<string, string>),
        },
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new ForgeError(`${init.method} ${new URL(url).pathname}: cannot reach the forge (${cause})`, 0);
    }
  }

  async #check(response: Response, method: string, path: string): Promise<void> {
    if (response.ok) return;
    const retryAfterMs = this.#retryAfter(response);
    let detail = "";
    try {
      const body = (await response.json()) as { message?: unknown };
      if (typeof body.message === "string") detail = `: ${body.message}`;
    } catch {
      // Not JSON: the status says enough.
    }
    const limited = retryAfterMs !== undefined ? " (rate-limited)" : "";
    throw new ForgeError(
      `${method} ${path}: ${response.status}${limited}${detail}`,
      response.status,
      retryAfterMs,
    );
  }

  /** `Retry-After` (seconds), or GitHub's exhausted `X-RateLimit-Remaining` with its reset time. */
  #retryAfter(response: Response): number | undefined {
    const after = response.headers.get("retry-after");
    if (after !== null && /^\d+$/.test(after)) return Number(after) * 1_000;
    if (response.status === 429) return 60_000;
    if (response.status === 403 && response.headers.get("x-ratelimit-remaining") === "0") {
      const reset = Number(response.headers.get("x-ratelimit-reset"));
      const now = (this.#options.now ?? Date.now)();
      return Number.isFinite(reset) && reset > 0 ? Math.max(1_000, reset * 1_000 - now) : 60_000;
    }
    return undefined;
  }
}
