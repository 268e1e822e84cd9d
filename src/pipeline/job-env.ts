/**
 * Which variables of the environment of the process that runs a job the job inherits: everything but
 * Slipway's own credentials (a foreground `slipway run`: the user's own environment), or only an
 * allow-list (a server: its tokens and whatever else its environment holds stay with it).
 */

/**
 * Slipway's own credentials (`SLIPWAY_TOKEN`, and any `SLIPWAY_*TOKEN*`/`*SECRET*`/`*PASSWORD*`) are
 * never inherited by a job: a job that prints its environment must not hand a server's token to
 * whoever reads its logs. A pipeline that needs one declares it under `secrets:`.
 */
export const SLIPWAY_CREDENTIAL = /^SLIPWAY_.*(TOKEN|SECRET|PASSWORD)/;

/**
 * What a job run by a server inherits from the server's environment unless the server's config
 * (`job_env:`) adds more: where programs are, whose home and shell, locale and time zone, where
 * temporary files go. Nothing that commonly carries a secret (proxies with passwords, cloud keys).
 */
export const SERVER_JOB_ENV: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "LC_*",
  "TZ",
  "TMPDIR",
  "TMP",
  "TEMP",
];

/** Every variable but Slipway's credentials: what a foreground run's jobs inherit. */
export function inheritAllButCredentials(name: string): boolean {
  return !SLIPWAY_CREDENTIAL.test(name);
}

/**
 * Only variables named in `patterns` (exact names, or prefixes ending in `*`), and never Slipway's
 * credentials, whatever the patterns say.
 */
export function inheritOnly(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith("*")));
  const prefixes = patterns.filter((p) => p.endsWith("*")).map((p) => p.slice(0, -1));
  return (name) =>
    (exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix))) && !SLIPWAY_CREDENTIAL.test(name);
}
