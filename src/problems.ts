/** Problems found in a file (where they are, what is wrong) and the closest valid name for a typo. */

/** One problem in a file (a pipeline, the scheduler config). `line` and `col` are 1-based. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  message: string;
  /** A valid name close to the wrong one, shown as "(did you mean `x`?)". */
  suggestion?: string;
}

/** `file:line:col: message (did you mean `x`?)`, the shape editors and terminals turn into links. */
export function formatProblem(problem: Problem): string {
  const hint = problem.suggestion === undefined ? "" : ` (did you mean \`${problem.suggestion}\`?)`;
  return `${problem.file}:${problem.line}:${problem.col}: ${problem.message}${hint}`;
}

/** Edit distance (insertions, deletions, substitutions) between two strings. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

const MAX_SUGGESTED_LENGTH = 200;

/**
 * The candidate closest to `name`, or undefined when none is close enough to be a plausible typo.
 * Case and `-`/`_` are ignored first (`working-directory` finds `working_directory`); the allowed
 * distance grows with the length so short names don't match everything.
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const normalize = (s: string) => s.toLowerCase().replaceAll("-", "_");
  const wanted = normalize(name);
  // The distance costs the product of the lengths: a name no one would type gets no suggestion.
  if (wanted.length > MAX_SUGGESTED_LENGTH) return undefined;
  const limit = wanted.length <= 3 ? 1 : wanted.length <= 6 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (candidate === name || Math.abs(candidate.length - wanted.length) > limit) continue;
    const distance = levenshtein(wanted, normalize(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** `a`, `a` or `b`, `a`, `b` or `c`: for messages listing what is allowed. */
export function listOr(items: readonly string[], word = "or"): string {
  const quoted = items.map((item) => `\`${item}\``);
  if (quoted.length <= 1) return quoted.join("");
  return `${quoted.slice(0, -1).join(", ")} ${word} ${quoted.at(-1)}`;
}

/** A schema's complaints (zod issues) as `path: message` lines; `whole` names the value when the path is empty. */
export function schemaIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  whole: string,
): string[] {
  return issues.map((i) => `${i.path.map(String).join(".") || whole}: ${i.message}`);
}
