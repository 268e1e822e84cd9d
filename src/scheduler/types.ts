/** The shapes admission works with: what a job needs, what the server has, who asks, why a request waits; and resource names. */

/** What one job needs, all of it at once, for as long as it runs. */
export interface Need {
  memoryBytes: number;
  /** Cores; fractions allowed. */
  cpu: number;
  /** Bytes the job may write to the work volume. */
  diskBytes: number;
  /** Named locks; the job takes one slot of each. */
  locks: string[];
}

/** What the server has to hand out. A lock's number is how many jobs may hold it at once. */
export interface Capacity {
  memoryBytes: number;
  cpu: number;
  diskBytes: number;
  locks: Record<string, number>;
}

/** Who asks for resources. Only the fields after `job` have defaults. */
export interface Ticket {
  runId: string;
  /** The run's human-readable name, shown next to its id in explanations. */
  runName: string | null;
  pipeline: string;
  /** The step's label (job name, matrix leg included). */
  job: string;
  /** Concurrency key that capacity is shared fairly across; the pipeline's name when absent. */
  key?: string;
  /** The key's weight: a key of weight 2 is entitled to twice the share of a key of weight 1. Default 1, or the server config's weight for the key. */
  weight?: number;
  /** Higher goes first. Default 0. Waiting raises it by one every `agingMs`. */
  priority?: number;
}

/** A ticket with its defaults filled in, as admission reports it. */
export type ResolvedTicket = Required<Ticket>;

/** A pool (`memory`, `cpu`, `disk`) or a named lock (`lock:swarm`). */
export type Resource = "memory" | "cpu" | "disk" | `lock:${string}`;

export function isLock(resource: Resource): resource is `lock:${string}` {
  return resource.startsWith("lock:");
}

/** `swarm` for `lock:swarm`. */
export function lockName(resource: Resource): string {
  return resource.slice("lock:".length);
}

/** A granted request holding some of a resource. */
export interface Holder {
  runId: string;
  runName: string | null;
  pipeline: string;
  job: string;
  /** When it was granted, ms since the epoch. */
  since: number;
  /** How much of the resource it holds (bytes, cores, or 1 slot of a lock). */
  amount: number;
  /** The worker (executor id) holding a slot of a lock held in the database, shared by a cluster. */
  worker?: string;
}

/** One resource a waiting request cannot get yet, and why. */
export interface Blocker {
  resource: Resource;
  /** How much the request needs of it. */
  need: number;
  /** How much is free now, before reservations (disk: also net of the volume's real free space). */
  free: number;
  capacity: number;
  /** Who holds it now, oldest first. */
  holders: Holder[];
  /** Requests ahead of this one that reserved some of what is free, so it waits behind them. */
  reservedBy?: Array<ResolvedTicket & { worker?: string }>;
  /** 1-based place among the waiting requests blocked on this same resource, in admission order. */
  position: number;
  /** Disk only: the work volume's real free space, when known. */
  volumeFree?: number;
}

/** Why one request is still waiting. */
export interface Explanation {
  ticket: ResolvedTicket;
  need: Need;
  /** When it started waiting, ms since the epoch. */
  since: number;
  /** Its priority with aging added: the first ordering criterion. */
  effectivePriority: number;
  /** 1-based place among all waiting requests, in admission order. */
  position: number;
  /** Never empty: a request waits only because something in this list is short. */
  blockers: Blocker[];
  /** One line for humans, e.g. "waits for lock swarm (1 of 1 held by run r1 job deploy since 10:02:03); 2nd in line". */
  reason: string;
}

/** Amounts per pool and lock. */
export interface Amounts {
  memoryBytes: number;
  cpu: number;
  diskBytes: number;
  locks: Record<string, number>;
}

/** What the server has, uses and holds now: the API's `/resources`. */
export interface Snapshot {
  capacity: Capacity;
  inUse: Amounts;
  /** Capacity minus use; disk is also limited by the volume's real free space minus disk granted but maybe not yet written. */
  free: Amounts;
  /** The work volume's real free space, or null when it is not checked. */
  volumeFreeBytes: number | null;
  holders: { memory: Holder[]; cpu: Holder[]; disk: Holder[]; locks: Record<string, Holder[]> };
  /** Requests granted and not yet released. */
  granted: number;
  waiting: number;
}
