/**
 * A forge's REST API for tests: a local HTTP server answering from a table of routes, the way GitHub,
 * Gitea and GitLab answer (JSON with an ETag that changes with the content, 304 on a match), recording
 * every request and able to fail the next ones, or every one for a while, with a status (500, 429 with
 * headers).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach } from "vitest";

export interface ForgeRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

/** A failed answer: a status and headers (`retry-after`, rate-limit headers). */
export interface ForgeFailure {
  status: number;
  headers?: Record<string, string>;
}

/**
 * A route's answer to a request (`query`: its query string); `undefined` answers 404, as a forge does
 * for what it does not have.
 */
export type ForgeRoute = (request: ForgeRequest, query: URLSearchParams) => unknown;

/** A forge's API as a table of routes; each answer is JSON with an ETag that changes with the content. */
export class FakeForge {
  /** By `METHOD /path` (without the query string). */
  routes = new Map<string, ForgeRoute>();
  requests: ForgeRequest[] = [];
  /** The next answers to give instead of the route's: a status and headers. */
  failures: ForgeFailure[] = [];
  /** Every answer until cleared, after `failures`: a forge that is down or rate-limits for a while. */
  failing: ForgeFailure | undefined;
  server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.#answer(req, res));
    await new Promise<void>((done) => this.server.listen(0, "127.0.0.1", done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Forgets the routes, requests and failures of the last test. */
  reset(): void {
    this.routes.clear();
    this.requests = [];
    this.failures = [];
    this.failing = undefined;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((done) => this.server.close(() => done()));
    // A client's keep-alive connections (a `slipway serve` still polling) must not hold it open.
    this.server.closeAllConnections();
    await closed;
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    let raw = "";
    req.on("data", (chunk: Buffer) => {
      raw += chunk.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "";
      const request = {
        method: req.method ?? "",
        path,
        headers: req.headers,
        body: raw ? JSON.parse(raw) : null,
      };
      this.requests.push(request);
      const failure = this.failures.shift() ?? this.failing;
      if (failure) {
        res.writeHead(failure.status, { "content-type": "application/json", ...failure.headers });
        res.end(JSON.stringify({ message: "try later" }));
        return;
      }
      const [bare = "", query = ""] = path.split("?");
      const answer = this.routes.get(`${req.method} ${bare}`)?.(request, new URLSearchParams(query));
      if (answer === undefined) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "Not Found" }));
        return;
      }
      const body = JSON.stringify(answer);
      const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 20)}"`;
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { etag });
        res.end();
        return;
      }
      res.writeHead(req.method === "POST" ? 201 : 200, { "content-type": "application/json", etag });
      res.end(body);
    });
  }
}

/** One fake forge for a test file: started before its tests, reset before each, stopped after them. */
export function fakeForgeForFile(): FakeForge {
  const forge = new FakeForge();
  beforeAll(() => forge.start());
  afterAll(() => forge.stop());
  beforeEach(() => forge.reset());
  return forge;
}
