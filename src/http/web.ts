/**
 * The web dashboard as the server serves it: the files `npm run build` bundled into `dist/web/`
 * (index.html for every client route, hashed assets cached for good), and its sign-in, which sets the
 * cookie the API accepts (session.ts). Everything under the API prefix, `/healthz` and `/hooks/` goes on.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join, relative } from "node:path";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import type { Tokens } from "./auth.js";
import { ApiError } from "./errors.js";
import { API_PREFIX } from "./routes.js";
import { endSession, presentedToken, sameOrigin, startSession } from "./session.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".map": "application/json",
};

/** What the page may load and who may frame it: only its own files, never inside another site's frame. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

const signIn = z.object({ token: z.string().min(1).max(4096) }).strict();

interface File {
  body: Uint8Array;
  type: string;
}

/** Every file of the built dashboard, read once: the bundle is small, and a server's files don't change. */
function readDashboard(dir: string | undefined): Map<string, File> | undefined {
  if (dir === undefined || !existsSync(join(dir, "index.html"))) return undefined;
  const files = new Map<string, File>();
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const url = `/${relative(dir, path).split("\\").join("/")}`;
    files.set(url, { body: readFileSync(path), type: TYPES[extname(path)] ?? "application/octet-stream" });
  }
  return files;
}

export function dashboard(options: { dir: string | undefined; tokens: Tokens }): MiddlewareHandler {
  const files = readDashboard(options.dir);
  const { tokens } = options;
  return async (c, next) => {
    const path = c.req.path;
    const method = c.req.method;
    if (
      path.startsWith(`${API_PREFIX}/`) ||
      path === API_PREFIX ||
      path === "/healthz" ||
      path.startsWith("/hooks/")
    )
      return next();

    if (path === "/session") {
      // Sign in and out: from the dashboard's own page only, as any request that sets what the cookie says.
      if (method === "POST" || method === "DELETE") {
        if (!sameOrigin(c))
          throw new ApiError(
            403,
            "cross_site",
            "signing in or out must come from the dashboard's own origin",
          );
        if (method === "DELETE") {
          endSession(c);
          return c.body(null, 204);
        }
        const parsed = signIn.safeParse(await c.req.json().catch(() => undefined));
        if (!parsed.success) throw new ApiError(400, "invalid_input", "send { token }");
        const caller = tokens.identify(parsed.data.token);
        if (!caller) throw new ApiError(401, "unauthorized", "invalid token");
        startSession(c, parsed.data.token);
        return c.json(caller);
      }
      if (method === "GET") {
        // Who the cookie (or header) says the caller is: the page shows only what that role may do.
        const presented = presentedToken(c);
        const caller = presented && tokens.identify(presented.token);
        if (!caller) throw new ApiError(401, "unauthorized", "not signed in");
        c.header("cache-control", "no-store");
        return c.json(caller);
      }
    }

    if (method !== "GET" && method !== "HEAD") return next();
    if (!files) return c.text("the dashboard is not built: run `npm run build`\n", 404);
    const asset = files.get(path);
    if (asset && path !== "/index.html") {
      // Hashed names change with their content: cached for good.
      c.header(
        "cache-control",
        path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "public, max-age=3600",
      );
      c.header("content-type", asset.type);
      c.header("x-content-type-options", "nosniff");
      return c.body(asset.body as Uint8Array<ArrayBuffer>);
    }
    if (path.startsWith("/assets/")) return c.text("no such file\n", 404);
    // A client route (`/runs/ID`, `/queue`...): the page, which routes itself; always asked again, so a
    // new build's asset names are picked up.
    const page = files.get("/index.html")!;
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
    c.header("cache-control", "no-cache");
    c.header("content-type", page.type);
    return c.body(page.body as Uint8Array<ArrayBuffer>);
  };
}
