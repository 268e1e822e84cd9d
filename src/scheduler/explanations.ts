/**
 * The words of admission: why a waiting job waits (one line per blocker, as `slipway queue` and the
 * API show them) and why a request is refused. The policy (admission.ts) decides; this module only
 * puts it in words.
 */
import { clockTime, formatBytes, formatCpu, ordinal } from "../format.js";
import { closest, listOr } from "../problems.js";
import {
  type Blocker,
  type Holder,
  isLock,
  lockName,
  type ResolvedTicket,
  type Resource,
  type Ticket,
} from "./types.js";

/** What the policy knows about a blocker beyond the {@link Blocker} itself. */
export interface BlockerContext {
  /** False when enough is free but requests ahead reserved it: it waits behind their reservation. */
  short: boolean;
  /** How much of the resource is granted now. */
  used: number;
  /** How much the first request that reserved it needs of it. */
  firstReservedNeed: number;
}

/** One line on one blocker: who holds it, or whose reservation it waits behind, and its place in line. */
export function waitReason(blocker: Blocker, context: BlockerContext): string {
  const { resource, need, free, capacity, holders, position } = blocker;
  const line = `${ordinal(position)} in line`;
  if (context.short) {
    if (isLock(resource)) {
      return `waits for lock ${lockName(resource)} (${context.used} of ${capacity} held by ${holdersText(holders, resource)}); ${line}`;
    }
    const heldBy = holders.length > 0 ? `held by ${holdersText(holders, resource)}` : "nothing held";
    if (resource === "disk" && blocker.volumeFree !== undefined && free < capacity - context.used) {
      return (
        `waits for disk (needs ${formatBytes(need)}, ${formatBytes(blocker.volumeFree)} free on the work volume, ` +
        `${formatBytes(context.used)} of it granted to ${holdersText(holders, resource)}); ${line}`
      );
    }
    return (
      `waits for ${resource} (needs ${amountText(resource, need)}, ${amountText(resource, free)} free of ` +
      `${amountText(resource, capacity)}; ${heldBy}); ${line}`
    );
  }
  const reservedBy = blocker.reservedBy ?? [];
  const first = reservedBy[0];
  const more = reservedBy.length > 1 ? ` and ${reservedBy.length - 1} more` : "";
  if (isLock(resource)) {
    const by = first === undefined ? "requests ahead of it" : `${who(first)}${more}`;
    return `waits behind a reservation for lock ${lockName(resource)} by ${by}; ${line}`;
  }
  const by =
    first === undefined
      ? "requests ahead of it"
      : `${who(first)} (needs ${amountText(resource, context.firstReservedNeed)}, ` +
        `${amountText(resource, free)} free)${more}`;
  return `waits behind a reservation for ${resource} by ${by}; ${line}`;
}

/** A need larger than its pool. */
export function tooLargeProblem(
  resource: "memory" | "cpu" | "disk",
  amount: number,
  capacity: number,
  setting: string,
): string {
  return (
    `needs ${amountText(resource, amount)}${resource === "cpu" ? "" : ` of ${resource}`} but the pool has ${amountText(resource, capacity)}` +
    ` (lower the job's \`resources.${setting}\` or raise \`resources.${setting}\` in the server config)`
  );
}

/** A lock the server config does not declare, with the declared ones and the closest of them. */
export function unknownLockProblem(name: string, declared: readonly string[]): string {
  const near = closest(name, declared);
  return (
    `needs lock \`${name}\`, which the server config does not declare` +
    (declared.length === 0 ? " (it declares no locks)" : ` (declared: ${listOr(declared, "and")})`) +
    (near === undefined ? "" : ` (did you mean \`${near}\`?)`)
  );
}

export function shuttingDownText(ticket: ResolvedTicket): string {
  return `admission is shutting down: ${describeJob(ticket)} was still waiting for resources and did not start`;
}

function amountText(resource: Resource, amount: number): string {
  if (resource === "memory" || resource === "disk") return formatBytes(amount);
  if (resource === "cpu") return `${formatCpu(amount)} cpu`;
  return String(amount);
}

/** `run r1 (recipe-a) job deploy`, and `on worker W` when it is known (a cluster's lock waiter). */
function who(ticket: Pick<Ticket, "runId" | "runName" | "job"> & { worker?: string }): string {
  const worker = ticket.worker === undefined ? "" : ` on worker ${ticket.worker}`;
  return `run ${ticket.runId}${ticket.runName ? ` (${ticket.runName})` : ""} job ${ticket.job}${worker}`;
}

/** `job deploy of run r1 (recipe-a)`: the subject of error messages. */
export function describeJob(ticket: Pick<Ticket, "runId" | "runName" | "job">): string {
  return `job ${ticket.job} of run ${ticket.runId}${ticket.runName ? ` (${ticket.runName})` : ""}`;
}

/** The first three holders (with their amounts for pools), then how many more. */
function holdersText(holders: Holder[], resource: Resource): string {
  if (holders.length === 0) return "nobody";
  const shown = holders.slice(0, 3).map(({ worker, ...h }) => {
    const amount = isLock(resource) ? "" : ` (${amountText(resource, h.amount)})`;
    // After the time: "held by run r1 job deploy since 10:02:03 on worker host:41:x".
    const where = worker === undefined ? "" : ` on worker ${worker}`;
    return `${who(h)} since ${clockTime(h.since)}${where}${amount}`;
  });
  const more = holders.length > 3 ? ` and ${holders.length - 3} more` : "";
  return `${shown.join(", ")}${more}`;
}

export function diskProblem(need: number, volumeFree: number, usedDisk: number): string {
  const freeable =
    usedDisk > 0
      ? `, and the ${formatBytes(usedDisk)} granted to running jobs would not make enough room`
      : ", and no running job holds disk that could be freed";
  return (
    `needs ${formatBytes(need)} of disk, ${formatBytes(volumeFree)} free on the work volume${freeable}` +
    " (free space on the volume or lower the job's `resources.disk`)"
  );
}
