/**
 * Who may do what over the API: bearer tokens, each with a name and a role, recognised by their
 * SHA-256 in constant time, and the one table of the role each route needs.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ROLES, type Role, type TokenEntry } from "../runs/config.js";

export type { Role, TokenEntry };

/** Who a request comes from: the token's name and role. */
export interface Caller {
  name: string;
  role: Role;
}

/** The name of the one `admin` token given by `--token`, `--token-file` or `SLIPWAY_TOKEN`. */
export const DEFAULT_TOKEN_NAME = "default";

export interface RouteRule {
  method: "GET" | "POST";
  /** Under the API prefix, Hono style: `/runs/:id/cancel`. */
  route: string;
  role: Role;
}

/**
 * The role each route needs. `read`: every GET but the audit log. `operate`: also what starts or
 * steers runs. `admin`: also what removes data and what tells who did what. A route not listed here
 * (there is none: a test checks it against the app) would need `admin`.
 */
export const ROUTE_ROLES: readonly RouteRule[] = [
  { method: "GET", route: "/runs", role: "read" },
  { method: "GET", route: "/runs/:id", role: "read" },
  { method: "GET", route: "/runs/:id/logs", role: "read" },
  { method: "GET", route: "/runs/:id/events", role: "read" },
  { method: "GET", route: "/events", role: "read" },
  { method: "GET", route: "/queue", role: "read" },
  { method: "GET", route: "/resources", role: "read" },
  { method: "GET", route: "/workers", role: "read" },
  { method: "GET", route: "/executors", role: "read" },
  { method: "GET", route: "/triggers", role: "read" },
  { method: "GET", route: "/openapi.json", role: "read" },
  { method: "POST", route: "/runs", role: "operate" },
  { method: "POST", route: "/runs/:id/cancel", role: "operate" },
  { method: "POST", route: "/runs/:id/signals/:name", role: "operate" },
  { method: "POST", route: "/runs/:id/retry", role: "operate" },
  { method: "POST", route: "/runs/:id/resume", role: "operate" },
  { method: "POST", route: "/prune", role: "admin" },
  { method: "GET", route: "/audit", role: "admin" },
  { method: "GET", route: "/config", role: "admin" },
];

/** Whether `role` may do what `needed` may. */
export function allows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export interface RouteMatch {
  rule: RouteRule;
  params: Record<string, string>;
}

/** The rule for a request (HEAD counts as GET), with the path's parameters; undefined for no route. */
export function matchRoute(method: string, path: string): RouteMatch | undefined {
  const verb = method === "HEAD" ? "GET" : method;
  const parts = path.split("/");
  for (const rule of ROUTE_ROLES) {
    if (rule.method !== verb) continue;
    const pattern = rule.route.split("/");
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const fits = pattern.every((segment, i) => {
      const part = parts[i]!;
      if (!segment.startsWith(":")) return segment === part;
      if (part === "") return false;
      try {
        params[segment.slice(1)] = decodeURIComponent(part);
      } catch {
        params[segment.slice(1)] = part;
      }
      return true;
    });
    if (fits) return { rule, params };
  }
  return undefined;
}

/** The named tokens a server accepts, each kept only as its hash. */
export class Tokens {
  readonly #entries: readonly TokenEntry[];

  constructor(entries: readonly TokenEntry[]) {
    if (entries.length === 0) throw new Error("Tokens: at least one token is needed");
    this.#entries = entries;
  }

  /** Every token's name and role (never its hash). */
  get list(): Caller[] {
    return this.#entries.map((e) => ({ name: e.name, role: e.role }));
  }

  /** A token given in the clear (`--token`), as an entry. */
  static entry(name: string, role: Role, token: string): TokenEntry {
    return { name, role, sha256: digest(token) };
  }

  /**
   * Who the presented token belongs to. Its hash is compared with every entry's, each in constant
   * time and all of them every time, so neither the answer's timing nor a token's length tells
   * anything about the tokens.
   */
  identify(presented: string): Caller | undefined {
    const hash = digest(presented);
    let found: TokenEntry | undefined;
    for (const entry of this.#entries) {
      const equal = timingSafeEqual(hash, entry.sha256);
      if (equal && found === undefined) found = entry;
    }
    return found && { name: found.name, role: found.role };
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
