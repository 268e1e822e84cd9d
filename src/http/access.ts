/**
 * The API's door: who a request comes from (its bearer token, or the dashboard's sign-in cookie),
 * whether that token's role may do what it asks (auth.ts ROUTE_ROLES), and the audit record of every
 * mutating request a known token makes, refused ones included. Runs before anything else reads the
 * request, so a refused one changes nothing.
 */
import type { MiddlewareHandler } from "hono";
import type { Replay, RequestLog } from "./audit.js";
import { allows, type Caller, matchRoute, type Tokens } from "./auth.js";
import { ApiError } from "./errors.js";
import { API_PREFIX } from "./routes.js";
import { presentedToken, sameOrigin } from "./session.js";

/** What the routes learn about a request, and tell its audit record. */
export type ApiEnv = {
  Variables: {
    caller: Caller;
    /** The run a request created (a submission), for its audit record. */
    run?: string;
    /** What a repeat of a keyed request is answered with. */
    replay?: Replay;
  };
};

export function accessControl(tokens: Tokens, requests: RequestLog): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const presented = presentedToken(c);
    if (!presented)
      throw new ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)");
    const caller = tokens.identify(presented.token);
    if (!caller) throw new ApiError(401, "unauthorized", "invalid token");
    c.set("caller", caller);
    const method = c.req.method;
    const path = c.req.path.startsWith(`${API_PREFIX}/`) ? c.req.path.slice(API_PREFIX.length) : c.req.path;
    const match = matchRoute(method, path);
    const mutating = method !== "GET" && method !== "HEAD";
    const key = mutating ? c.req.header("idempotency-key") : undefined;
    const record = (status: number) =>
      requests.record({
        caller,
        method,
        path,
        match,
        status,
        key,
        run: c.get("run"),
        replay: c.get("replay"),
      });
    // The sign-in cookie rides along on any request the browser makes: one that changes something must
    // come from the dashboard's own page (session.ts).
    if (mutating && presented.from === "cookie" && !sameOrigin(c)) {
      await record(403);
      throw new ApiError(
        403,
        "cross_site",
        `${method} ${path} with the sign-in cookie must come from the dashboard's own origin`,
      );
    }
    // An unknown route is answered 404 to any known token.
    const needed = match?.rule.role ?? "read";
    if (!allows(caller.role, needed)) {
      if (mutating) await record(403);
      throw new ApiError(
        403,
        "forbidden",
        `token "${caller.name}" has role ${caller.role}; ${method} ${match?.rule.route ?? path} needs role ${needed}`,
      );
    }
    try {
      await next();
    } finally {
      // After the answer is decided (errors included: onError has set it), before it is sent.
      if (mutating) {
        await record(c.res.status);
        requests.settled(key);
      }
    }
  };
}
