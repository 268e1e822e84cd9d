/** Durations (`1h30m`) and sizes (`4GiB`) as written in pipeline files and the scheduler config, parsed to milliseconds and bytes. */

const NUMBER = String.raw`\d+(?:\.\d+)?`;

/**
 * Units from largest to smallest, each at most once. The lookahead on `m` keeps `500ms` from being
 * read as minutes. Exported for the JSON Schema, so editors flag bad durations as you type.
 */
export const DURATION_PATTERN = `^(?=\\d)(?:${NUMBER}d)?(?:${NUMBER}h)?(?:${NUMBER}m(?!s))?(?:${NUMBER}s)?(?:${NUMBER}ms)?$`;

const DURATION_UNITS: Record<string, number> = {
  d: 86_400_000,
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
};

/** Words people write for units, mapped to ours; only used to suggest a fix. */
const DURATION_WORDS: Record<string, string> = {
  ms: "ms",
  msec: "ms",
  msecs: "ms",
  millis: "ms",
  millisecond: "ms",
  milliseconds: "ms",
  s: "s",
  sec: "s",
  secs: "s",
  second: "s",
  seconds: "s",
  m: "m",
  min: "m",
  mins: "m",
  minute: "m",
  minutes: "m",
  h: "h",
  hr: "h",
  hrs: "h",
  hour: "h",
  hours: "h",
  d: "d",
  day: "d",
  days: "d",
};

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/** Exported for the JSON Schema. A plain number of bytes is written as a YAML number or digits. */
export const SIZE_PATTERN = `^${NUMBER}(?:B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$`;

/** A duration or size that can't be read; the message says what to write instead. */
export class UnitError extends Error {
  override name = "UnitError";
}

function tokens(text: string): Array<[number, string]> | undefined {
  const out: Array<[number, string]> = [];
  const re = /(\d+(?:\.\d+)?)([a-z]+)/gy;
  let match: RegExpExecArray | null;
  let end = 0;
  // biome-ignore lint/suspicious/noAssignInExpressions: the usual exec loop
  while ((match = re.exec(text)) !== null) {
    out.push([Number(match[1]), match[2]!]);
    end = re.lastIndex;
  }
  return end === text.length && out.length > 0 ? out : undefined;
}

/** The duration the user most likely meant, written our way, or undefined when there is no good guess. */
function guessDuration(text: string): string | undefined {
  const squeezed = text.trim().toLowerCase().replace(/\s+/g, "");
  const parts = tokens(squeezed);
  if (!parts) return undefined;
  let ms = 0;
  for (const [value, word] of parts) {
    const unit = DURATION_WORDS[word];
    if (unit === undefined) return undefined;
    ms += value * DURATION_UNITS[unit]!;
  }
  return ms > 0 ? formatDuration(ms) : undefined;
}

/** Why `input` is not a duration, and what to write: the message pipelines report. */
export function durationProblem(input: unknown): string {
  if (typeof input === "number") {
    return `bad duration \`${input}\`: a number needs a unit (ms, s, m, h, d), e.g. \`${input}s\` or \`${input}m\``;
  }
  if (typeof input !== "string") {
    return `bad duration: expected a string such as \`15m\` or \`1h30m\`, got ${typeof input === "object" ? (input === null ? "nothing" : Array.isArray(input) ? "a list" : "a map") : `\`${String(input)}\``}`;
  }
  const parts = tokens(input);
  if (parts?.every(([, unit]) => unit in DURATION_UNITS)) {
    // Every unit is ours, so the order or a repeat is what's wrong.
    return `bad duration \`${input}\`: write each unit once, largest first, e.g. \`${guessDuration(input) ?? "1h30m"}\``;
  }
  return `bad duration \`${input}\`: use a number and a unit (ms, s, m, h, d), e.g. \`${guessDuration(input) ?? "15m"}\``;
}

/**
 * Parses `500ms`, `2s`, `15m`, `6h`, `1d` and combinations from largest to smallest unit (`1h30m`)
 * into milliseconds, rounded to a whole millisecond. Throws a {@link UnitError} that says what to
 * write instead.
 */
export function parseDuration(text: string): number {
  if (typeof text !== "string" || !new RegExp(DURATION_PATTERN).test(text)) {
    throw new UnitError(durationProblem(text));
  }
  let ms = 0;
  for (const [value, unit] of tokens(text)!) ms += value * DURATION_UNITS[unit]!;
  return Math.round(ms);
}

/** Milliseconds written the way pipelines write them: `1h30m`, `2s`, `500ms`, `0ms`. */
export function formatDuration(ms: number): string {
  let rest = Math.round(ms);
  if (rest <= 0) return "0ms";
  let out = "";
  for (const [unit, size] of Object.entries(DURATION_UNITS)) {
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return out;
}

function guessSize(text: string): string | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return undefined;
  const [, value, word = ""] = match;
  const lower = word.toLowerCase();
  if (lower === "" || lower === "b" || lower === "bytes" || lower === "byte") return `${value}`;
  const exact = Object.keys(SIZE_UNITS).find((unit) => unit.toLowerCase() === lower);
  if (exact !== undefined) return `${value}${exact}`;
  // `4G`, `4Gi`, `4g` (docker, Kubernetes): both mean binary units in those tools.
  const binary = { k: "KiB", ki: "KiB", m: "MiB", mi: "MiB", g: "GiB", gi: "GiB", t: "TiB", ti: "TiB" }[
    lower
  ];
  return binary === undefined ? undefined : `${value}${binary}`;
}

/** Why `input` is not a size, and what to write. */
export function sizeProblem(input: unknown): string {
  const units = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";
  if (typeof input === "number") {
    return `bad size \`${input}\`: a plain number is a count of bytes and must be a whole number 0 or more, e.g. \`1024\` or \`512MiB\``;
  }
  if (typeof input !== "string") {
    return `bad size: expected a number of bytes or a string such as \`4GiB\`, got ${input === null ? "nothing" : Array.isArray(input) ? "a list" : typeof input === "object" ? "a map" : `\`${String(input)}\``}`;
  }
  return `bad size \`${input}\`: use a number and a unit (${units}), e.g. \`${guessSize(input) ?? "4GiB"}\``;
}

/**
 * Parses a size into bytes: a whole number (`1024`, plain bytes) or a number and a unit, decimal
 * (`10GB` = 10^10) or binary (`4GiB` = 4 * 2^30). Fractions round to the nearest byte.
 */
export function parseSize(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new UnitError(sizeProblem(value));
    return value;
  }
  if (typeof value !== "string" || !new RegExp(SIZE_PATTERN).test(value)) {
    throw new UnitError(sizeProblem(value));
  }
  const match = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(value)!;
  const bytes = Math.round(Number(match[1]) * SIZE_UNITS[match[2] || "B"]!);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`bad size \`${value}\`: too large`);
  return bytes;
}
