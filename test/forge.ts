/**
 * A forge's REST API for tests: a local HTTP server answering from a table of routes, the way GitHub,
 * Gitea and GitLab answer (JSON with an ETag that changes with the content, 304 on a match), recording
 * every request and able to fail the next ones with a status (500, 429 with headers).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ForgeRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

/** A forge's API as a table of routes; each answer is JSON with an ETag that changes with the content. */
export class FakeForge {
  routes = new Map<string, () => unknown>();
  requests: ForgeRequest[] = [];
  /** The next answers to give instead of the route's: a status and headers. */
  failures: { status: number; headers?: Record<string, string> }[] = [];
  server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.#answer(req, res));
    await new Promise<void>((done) => this.server.listen(0, "127.0.0.1", done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    let raw = "";
    req.on("data", (chunk: Buffer) => {
      raw += chunk.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "";
      this.requests.push({
        method: req.method ?? "",
        path,
        headers: req.headers,
        body: raw ? JSON.parse(raw) : null,
      });
      const failure = this.failures.shift();
      if (failure) {
        res.writeHead(failure.status, { "content-type": "application/json", ...failure.headers });
        res.end(JSON.stringify({ message: "try later" }));
        return;
      }
      const route = this.routes.get(`${req.method} ${path.split("?")[0]}`);
      if (!route) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "Not Found" }));
        return;
      }
      const body = JSON.stringify(route() ?? null);
      const etag = `"${Buffer.from(body).toString("base64url").slice(-16)}-${body.length}"`;
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
