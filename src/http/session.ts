/**
 * The dashboard's sign-in: a token kept in an HttpOnly, SameSite=Strict cookie, which the API accepts
 * as it accepts the bearer header, and the rule that keeps other sites from acting with that cookie.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";

/** The cookie the dashboard's sign-in sets: the token itself, readable by no script. */
export const SESSION_COOKIE = "slipway_session";

/** The token a request presents: its bearer header, else the sign-in cookie, with which of the two. */
export function presentedToken(c: Context): { token: string; from: "header" | "cookie" } | undefined {
  const bearer = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "");
  if (bearer) return { token: bearer[1]!, from: "header" };
  const cookie = getCookie(c, SESSION_COOKIE);
  return cookie ? { token: cookie, from: "cookie" } : undefined;
}

/**
 * Whether a request made with the cookie comes from the dashboard's own origin. SameSite=Strict keeps
 * the cookie off requests from other sites, but a site is scheme and host without the port: a page on
 * another port of the same host (or a sibling subdomain) is same-site and would carry it. So a request
 * that changes something must also say it comes from this origin: `Sec-Fetch-Site: same-origin`
 * (every current browser sends it), else an `Origin` whose host is the request's own.
 */
export function sameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) return site === "same-origin";
  const origin = c.req.header("origin");
  if (origin === undefined) return false;
  try {
    const host = c.req.header("x-forwarded-host") ?? c.req.header("host");
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Served over TLS, directly or behind a proxy that says so: the cookie is then sent only over TLS. */
function secure(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}

export function startSession(c: Context, token: string): void {
  setCookie(c, SESSION_COOKIE, token, {
    path: "/",
    httpOnly: true,
    sameSite: "Strict",
    secure: secure(c),
  });
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict", secure: secure(c) });
}
