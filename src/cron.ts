/** Cron lines (five fields, as crontab(5) and GitHub's `schedule:`), read in an IANA time zone. */

export interface Cron {
  minute: ReadonlySet<number>;
  hour: ReadonlySet<number>;
  day: ReadonlySet<number>;
  month: ReadonlySet<number>;
  /** 0 is Sunday (7 is read as 0). */
  weekday: ReadonlySet<number>;
  /** Whether day-of-month and day-of-week were restricted (not `*`): when both are, either matches. */
  dayRestricted: boolean;
  weekdayRestricted: boolean;
}

const MINUTE_MS = 60_000;
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS, base: 1 },
  { name: "day of week", min: 0, max: 7, names: DAYS, base: 0 },
] as const;

/** Parses a cron line; throws an Error whose message says what is wrong. */
export function parseCron(text: string): Cron {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5)
    throw new Error(
      `a cron line has 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}: e.g. \`0 3 * * 1-5\``,
    );
  const sets = parts.map((part, i) => parseField(part, FIELDS[i]!));
  const weekday = new Set([...sets[4]!].map((d) => d % 7));
  return {
    minute: sets[0]!,
    hour: sets[1]!,
    day: sets[2]!,
    month: sets[3]!,
    weekday,
    dayRestricted: parts[2] !== "*",
    weekdayRestricted: parts[4] !== "*",
  };
}

function parseField(
  text: string,
  field: { name: string; min: number; max: number; names?: readonly string[]; base?: number },
): Set<number> {
  const values = new Set<number>();
  const value = (token: string): number => {
    const named = field.names?.indexOf(token.toLowerCase()) ?? -1;
    const n = named >= 0 ? named + (field.base ?? 0) : /^\d+$/.test(token) ? Number(token) : Number.NaN;
    if (!Number.isInteger(n) || n < field.min || n > field.max)
      throw new Error(`cron ${field.name}: \`${token}\` is not between ${field.min} and ${field.max}`);
    return n;
  };
  for (const item of text.split(",")) {
    const [range, stepText] = item.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`cron ${field.name}: bad step in \`${item}\``);
    let from: number;
    let to: number;
    if (range === "*") {
      from = field.min;
      to = field.max;
    } else if (range?.includes("-")) {
      const [a, b] = range.split("-");
      from = value(a ?? "");
      to = value(b ?? "");
      if (to < from) throw new Error(`cron ${field.name}: range \`${range}\` goes backwards`);
    } else {
      from = value(range ?? "");
      to = stepText === undefined ? from : field.max;
    }
    for (let n = from; n <= to; n += step) values.add(n);
  }
  return values;
}

/** Whether the time zone is one this runtime knows (IANA names such as `Europe/Berlin`, or `UTC`). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock in `timeZone` at `ms`. */
function wallClock(ms: number, timeZone: string) {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      minute: "numeric",
      hour: "numeric",
      day: "numeric",
      month: "numeric",
      weekday: "short",
    });
    formatters.set(timeZone, format);
  }
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
  return {
    minute: Number(parts.minute),
    hour: Number(parts.hour),
    day: Number(parts.day),
    month: Number(parts.month),
    weekday: DAYS.indexOf((parts.weekday ?? "").toLowerCase()),
  };
}

/** Whether the cron fires at the minute starting at `ms` (epoch ms, a whole minute) in `timeZone`. */
export function cronMatches(cron: Cron, ms: number, timeZone: string): boolean {
  const t = wallClock(ms, timeZone);
  if (!cron.minute.has(t.minute) || !cron.hour.has(t.hour) || !cron.month.has(t.month)) return false;
  const day = cron.day.has(t.day);
  const weekday = cron.weekday.has(t.weekday);
  if (cron.dayRestricted && cron.weekdayRestricted) return day || weekday;
  return day && weekday;
}

/** The start of the minute `ms` falls in. */
export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

/**
 * The latest minute in (`after`, `upTo`] at which the cron fires, or undefined. Looks back at most
 * `lookBackMs` from `upTo` (a schedule missed for longer than that is not made up).
 */
export function latestFiring(
  cron: Cron,
  timeZone: string,
  after: number,
  upTo: number,
  lookBackMs = 31 * 24 * 3_600_000,
): number | undefined {
  const floor = Math.max(after, upTo - lookBackMs);
  for (let minute = minuteOf(upTo); minute > floor; minute -= MINUTE_MS) {
    if (cronMatches(cron, minute, timeZone)) return minute;
  }
  return undefined;
}
