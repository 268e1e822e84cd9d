/** Sizes, counts and times written for the humans reading admission errors and explanations. */

const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** `32 GiB`, `1.5 GiB`, `512 MiB`, `0 B`: binary units, as the config and pipelines write them. */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < BINARY.length - 1) {
    value /= 1024;
    unit++;
  }
  const rounded = unit === 0 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${rounded} ${BINARY[unit]}`;
}

/** Cores as a plain number, without float noise (`0.30000000000000004` → `0.3`). */
export function formatCpu(cpu: number): string {
  return String(Math.round(cpu * 1000) / 1000);
}

/** `1st`, `2nd`, `3rd`, `11th`, `22nd`. */
export function ordinal(n: number): string {
  const tens = n % 100;
  const suffix =
    tens >= 11 && tens <= 13 ? "th" : n % 10 === 1 ? "st" : n % 10 === 2 ? "nd" : n % 10 === 3 ? "rd" : "th";
  return `${n}${suffix}`;
}

/** `10:02:03` in the server's local time: explanations are read on the day they are written. */
export function clockTime(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
