/**
 * The shapes of the HTTP API, as zod schemas: request bodies are validated with them at the boundary,
 * response types are inferred from them (the CLI's `--json` output uses the same types), and the
 * OpenAPI document is generated from them, so the three cannot drift apart.
 */
import { z } from "zod";

/** An input value as a run is given it: strings as typed on a command line, or typed JSON values. */
export const inputValue = z.union([z.string(), z.number(), z.boolean()]);

export const submitRequest = z
  .object({
    /** A pipeline registered with the server (`slipway serve --pipeline FILE`), by its name. */
    pipeline: z.string().min(1).optional(),
    /** A pipeline file sent whole: `name` is its path (jobs run in its directory), `source` its text. */
    file: z
      .object({ name: z.string().min(1), source: z.string() })
      .strict()
      .optional(),
    inputs: z.record(z.string(), inputValue).default({}),
    tiers: z.array(z.string()).default([]),
    /** The run name, e.g. `{ticket}-{branch}-{attempt}`: in every log line, usable instead of the id. */
    name: z.string().min(1).optional(),
    /** Makes the submission safe to repeat: the same key returns the run it started the first time. */
    key: z.string().min(1).max(256).optional(),
    /**
     * What started the run, as the pipeline's `event` reads it (`{ kind: "push", sha, branch, ... }`,
     * docs/triggers.md): a system that triggers runs itself sends it. Without it the run is manual.
     */
    event: z.looseObject({ kind: z.string().min(1) }).optional(),
    /** An absolute path on the server: the checkout the run's jobs run in. */
    workspace: z.string().regex(/^\//, "`workspace` is an absolute path on the server").optional(),
    /** The run's code is untrusted: its jobs get no secrets and none of the server's environment beyond the basics. */
    untrusted: z.boolean().optional(),
  })
  .strict()
  .refine((body) => (body.pipeline === undefined) !== (body.file === undefined), {
    message: "give exactly one of `pipeline` (a registered pipeline's name) or `file` ({ name, source })",
  });
export type SubmitRequest = z.input<typeof submitRequest>;

export const submitResponse = z.object({
  id: z.string(),
  name: z.string().nullable(),
  pipeline: z.string(),
  /** Steps of the run: jobs, matrix legs and readiness probes. */
  jobs: z.number().int(),
});
export type SubmitResponse = z.infer<typeof submitResponse>;

export const cancelRequest = z.object({ reason: z.string().min(1).optional() }).strict();

/** Any JSON value: a signal's payload (its fields become the wait job's outputs). */
export const signalPayload = z.json();

const errorInfo = z.object({
  name: z.string(),
  message: z.string(),
  code: z.string().optional(),
  stack: z.string().optional(),
});

/** Lifecycle of a run; see docs/state-machine.md. */
export const runStatus = z.enum([
  "running",
  "waiting",
  "completed",
  "compensating",
  "compensated",
  "needs_attention",
  "failed",
  "cancelled",
]);

export const runSummary = z.object({
  id: z.string(),
  name: z.string().nullable(),
  pipeline: z.string(),
  version: z.number().int(),
  status: runStatus,
  createdAt: z.number(),
  endedAt: z.number().nullable(),
  cause: z
    .union([
      z.object({ kind: z.literal("failure"), action: z.string(), error: errorInfo }),
      z.object({ kind: z.literal("cancel"), reason: z.string() }),
      z.object({ kind: z.literal("parent"), runId: z.string(), step: z.string() }),
    ])
    .nullable(),
  error: errorInfo.nullable(),
  /** A child run's parent: the run and the step that started it (absent from older servers). */
  parent: z.object({ runId: z.string(), step: z.string() }).nullable().optional(),
  /** What started it: the event's kind (`push`, `schedule`...) or `manual`; null for a saga's run. */
  trigger: z.string().nullable().optional(),
  /** Its concurrency key (`concurrency.key`, else the pipeline's name); null for a saga's run. */
  concurrencyKey: z.string().nullable().optional(),
});
export type RunSummary = z.infer<typeof runSummary>;

export const stepSummary = z.object({
  job: z.string(),
  status: z.enum([
    "running",
    "retrying",
    "waiting",
    "completed",
    "failed",
    "undoing",
    "undone",
    "undo_failed",
  ]),
  attempt: z.number().int(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
  output: z.record(z.string(), z.unknown()).nullable(),
  error: z.string().nullable(),
  undoError: z.string().nullable(),
  /** The engine's durable wait state: `signal`, `deadline`, `until`, `nextCheckAt`, `retryAt`. */
  state: z.record(z.string(), z.unknown()).nullable(),
  /** Why admission holds a started job back: the resource or lock, who holds it, its place in line. */
  queued: z.string().nullable().optional(),
  /** A step of a loop or fan-out (`attempts#2.fix`): the group's step. */
  group: z.string().optional(),
  /** A step of a loop: its iteration, from 1. */
  iteration: z.number().int().optional(),
  /** A step of a fan-out: its item, from 1. */
  item: z.number().int().optional(),
});
export type StepSummary = z.infer<typeof stepSummary>;

/** What a run's plan says about its steps: how people read them and what each waits for. */
export const planOutline = z.object({
  steps: z.array(
    z.object({
      action: z.string(),
      label: z.string(),
      /** The steps it starts after (a readiness probe: its own job). */
      needs: z.array(z.string()),
      /** Memory the job declares: bytes, or `auto` (the recent p95 of its measured peaks). */
      memory: z.union([z.number(), z.literal("auto")]).optional(),
    }),
  ),
  excluded: z.array(z.object({ job: z.string(), reason: z.string() })),
});
export type PlanOutline = z.infer<typeof planOutline>;

/** Why a job of an unfinished run is not running. */
export const queueEntry = z.object({
  run: z.string(),
  runName: z.string().nullable(),
  pipeline: z.string(),
  job: z.string(),
  label: z.string(),
  state: z.string(),
  /**
   * What it waits for: `needs`, `signal`, `sleep`, `poll`, `retry`, `held`, `admission` (resources or
   * a lock), `group` (a loop's or fan-out's own steps).
   */
  reason: z.string(),
  /** The sentence an operator reads. */
  message: z.string(),
  /** When the wait ends by itself (a deadline, a wake-up), epoch ms. */
  until: z.number().nullable(),
});
export type QueueEntry = z.infer<typeof queueEntry>;

/** A job of a run as the queue explains it (`QueueEntry` without the run's fields). */
export const waitingJob = queueEntry.omit({ run: true, runName: true, pipeline: true });
export type WaitingJob = z.infer<typeof waitingJob>;

/**
 * Why a phase waits: `lock` (a named lock), `pool` (memory, cpu or disk), `admission` (admitted before
 * the queue said why it waited), `concurrency` (the run's
 * turn under its concurrency key), `retry` (the backoff before the next attempt), `signal`, `sleep`,
 * `poll`, `child` (the child run it started), `loop` and `fan-out` (its group's own steps).
 */
export const phaseReason = z
  .object({
    kind: z.enum([
      "lock",
      "pool",
      "admission",
      "concurrency",
      "retry",
      "signal",
      "sleep",
      "poll",
      "child",
      "loop",
      "fan-out",
    ]),
    /** The lock (`swarm`), the pool (`memory`), the concurrency key, the signal, or the child run's id. */
    resource: z.string().optional(),
    /** Who held the lock or pool when the reason was given (its first holder). */
    holder: z.object({ run: z.string(), runName: z.string().nullable(), job: z.string() }).optional(),
    /** Its place in line for that resource, from 1, when known. */
    position: z.number().int().optional(),
    /** Enough was free, but requests ahead of it had reserved it. */
    reserved: z.boolean().optional(),
    /** The sentence the queue gave (`slipway queue`'s words), when there is one. */
    message: z.string().optional(),
  })
  .describe(
    "Why a phase waits: kind lock | pool | admission | concurrency | retry | signal | sleep | poll | child | loop | fan-out; " +
      "resource names the lock, pool, concurrency key, signal or child run; holder and position when known",
  );
export type PhaseReason = z.infer<typeof phaseReason>;

/**
 * One stretch of a job's time. `queued`: due (its needs done, or its retry due) but not yet asking
 * for resources; `waiting`: held back, for `reason`; `running`: its command (or its wait job) under
 * way; `probing`: its readiness probe; `undoing`: its undo (waits of an undo for a lock are `waiting`
 * phases with the same `attempt`); `cleanup`: the cleanup after an attempt cut short.
 */
export const phase = z
  .object({
    phase: z.enum(["queued", "waiting", "running", "probing", "undoing", "cleanup"]),
    /** The attempt it belongs to, from 1 (an undo's own attempts for `undoing`). */
    attempt: z.number().int(),
    /** Epoch ms. */
    startedAt: z.number(),
    /** Epoch ms; null while it lasts. */
    endedAt: z.number().nullable(),
    reason: phaseReason.optional(),
    /** The attempt, undo or cleanup that this phase ends failed. */
    failed: z.boolean().optional(),
  })
  .describe(
    "One stretch of a step's time: queued (due, not yet asking for resources), waiting (for `reason`), running, " +
      "probing (its readiness probe), undoing, cleanup; endedAt null while it lasts",
  );
export type Phase = z.infer<typeof phase>;

/** A step's phases, oldest first: every attempt, wait, probe, undo and cleanup it had. */
export const jobTimings = z
  .object({
    job: z.string(),
    label: z.string(),
    /** For a readiness probe's step: the job it probes (its phases are `probing`). */
    probes: z.string().optional(),
    /** For a job with a readiness probe: when the probe said it was up, epoch ms. */
    readyAt: z.number().optional(),
    phases: z.array(phase),
  })
  .describe("A step's phases, oldest first: every attempt, wait, probe, undo and cleanup it had");
export type JobTimings = z.infer<typeof jobTimings>;

/**
 * Where a run's time went: from its creation to its end (or, for a run under way, to the last phase
 * that ended), the chain of jobs each of which waited for the one before. A failed run's chain runs
 * through the failing job and the rollback. `segments` cover that time without gap or overlap (a
 * stretch between jobs is a `queued` segment of no job); `steps` sum them up per job.
 */
export const criticalPath = z
  .object({
    /** From the run's creation to the end of the chain, ms: the sum of `segments` (`steps` leave out time between jobs). */
    totalMs: z.number(),
    steps: z.array(
      z.object({
        job: z.string(),
        ms: z.number(),
        /** Of `ms`, held back (waiting for a lock, a pool, admission, its concurrency turn, a retry), when any. */
        queuedMs: z.number().optional(),
        /** An undo or cleanup (absent: the job's own attempts). */
        phase: z.enum(["undo", "cleanup"]).optional(),
        /** It ended in failure. */
        failed: z.boolean().optional(),
      }),
    ),
    segments: z.array(phase.extend({ job: z.string().nullable() })),
  })
  .describe(
    "Where the run's time went, from its creation to its end, a failed run's failure and rollback included: " +
      "segments cover it without gap or overlap (job null: between jobs); steps sum them up per job",
  );
export type CriticalPath = z.infer<typeof criticalPath>;

/** A child run as its parent's `show` lists it: the run, the step that started it, how far it got. */
export const childRun = z.object({
  id: z.string(),
  step: z.string(),
  pipeline: z.string(),
  status: runStatus,
  createdAt: z.number(),
  endedAt: z.number().nullable(),
});
export type ChildRun = z.infer<typeof childRun>;

export const runDetail = runSummary.extend({
  steps: z.array(stepSummary),
  /** For a pipeline run: its file, inputs and tiers as started. */
  spec: z
    .object({
      file: z.string(),
      inputs: z.record(z.string(), inputValue),
      tiers: z.array(z.string()),
      /** What started the run (a push, a pull request, a comment, a schedule), as `event` in expressions. */
      event: z.record(z.string(), z.unknown()).optional(),
      /** The run's checkout of the event's commit. */
      workspace: z.string().optional(),
      /** Who submitted it: the name of the token it was sent to the server with. */
      startedBy: z.string().optional(),
    })
    .nullable(),
  plan: planOutline.nullable(),
  /** Null until a job has completed. */
  criticalPath: criticalPath.nullable(),
  /** Every step's phases (absent from older servers): what the waterfall draws. */
  timings: z.array(jobTimings).optional(),
  /** Every job that is not running and why, in the queue's words (`GET /queue` gives the same). */
  waiting: z.array(waitingJob),
  /** The child runs its steps started, oldest first (absent from older servers). */
  children: z.array(childRun).optional(),
});
export type RunDetail = z.infer<typeof runDetail>;

export const queueResponse = z.object({ jobs: z.array(queueEntry) });
export type QueueResponse = z.infer<typeof queueResponse>;

/** Who holds part of a pool or a slot of a lock: the run, the job, since when, how much. */
export const poolHolder = z.object({
  run: z.string(),
  runName: z.string().nullable(),
  pipeline: z.string(),
  /** The job's label (`build (linux/amd64)`). */
  job: z.string(),
  /** When it was granted, epoch ms. */
  since: z.number(),
  /** Bytes (memory, disk), cores (cpu), or 1 slot of a lock. */
  amount: z.number(),
  /** The worker (executor id) holding a slot of a lock shared by a cluster (PostgreSQL). */
  worker: z.string().optional(),
});
export type PoolHolder = z.infer<typeof poolHolder>;

/**
 * What a pipeline's job declares (in its newest run) against the peak memory measured in its recent
 * runs (the newest 100 kept): `memory: auto` asks admission for the p95 of the newest 20 plus a margin.
 */
export const jobUsage = z.object({
  pipeline: z.string(),
  /** The job's name (every leg of a matrix, every iteration of a loop counts as the job). */
  job: z.string(),
  /** Its `resources:` in the newest run of the pipeline; null when no run of it is kept. */
  declared: z
    .object({
      /** Bytes, or `auto`; absent: none declared. */
      memory: z.union([z.number(), z.literal("auto")]).optional(),
      cpu: z.number().optional(),
      /** Bytes. */
      disk: z.number().optional(),
      locks: z.array(z.string()),
    })
    .nullable(),
  /** The memory admission would ask for now, bytes (`auto` resolved from the peaks); null: none. */
  requestMemory: z.number().nullable(),
  /** The newest run of the pipeline, which the declaration was read from. */
  run: z.string().nullable(),
  /** Peak resident memory of the job's process tree in its recent runs; null: never measured. */
  measured: z
    .object({
      samples: z.number().int(),
      /** Nearest-rank 95th percentile, bytes. */
      p95: z.number(),
      max: z.number(),
      /** The newest sample, bytes. */
      last: z.number(),
    })
    .nullable(),
});
export type JobUsage = z.infer<typeof jobUsage>;

export const resourcesResponse = z.object({
  /** Resource pools and locks with their capacity and what is free (empty until admission is configured). */
  pools: z.array(
    z.object({
      name: z.string(),
      capacity: z.number(),
      free: z.number(),
      /** Each holder in words: `run-name job (since 16:00:01)`. */
      holders: z.array(z.string()),
      /** The same holders as data (absent from older servers). */
      held: z.array(poolHolder).optional(),
    }),
  ),
  /** Jobs running now, with what they declared they need. */
  running: z.array(
    z.object({
      run: z.string(),
      job: z.string(),
      label: z.string(),
      since: z.number().nullable(),
      declared: z.record(z.string(), z.unknown()),
    }),
  ),
  /**
   * Per pipeline and job, declared resources against measured peaks (absent from older servers):
   * every job with a kept peak, and every job of pipelines run lately.
   */
  jobs: z.array(jobUsage).optional(),
});
export type ResourcesResponse = z.infer<typeof resourcesResponse>;

/**
 * A worker: a process running runs from this database (a server, one of a cluster's, a foreground
 * `slipway run`), alive while it beats its heartbeat within the lease. What it holds: the runs it
 * owns now and their running jobs.
 */
export const workerInfo = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  /** Since its last heartbeat, ms, as the answering server's clock saw it. */
  heartbeatAgeMs: z.number(),
  /** Its heartbeat is within the lease (and, on the answering server's host, its process runs). */
  alive: z.boolean(),
  /** It is the executor of the process that answered. */
  self: z.boolean(),
  /**
   * The most runs it holds at once (a cluster worker's `max_runs:`); null: no limit (no `max_runs:`,
   * a server on SQLite, a foreground run).
   */
  maxRuns: z.number().int().nullable(),
  /** Runs it has room for: `maxRuns` less the runs it holds, at least 0; null: no limit. */
  free: z.number().int().nullable(),
  /** Runs it owns now, with the jobs of each running or undoing. */
  runs: z.array(
    z.object({
      id: z.string(),
      name: z.string().nullable(),
      pipeline: z.string(),
      status: runStatus,
      /** Labels of its jobs running or undoing. */
      jobs: z.array(z.string()),
    }),
  ),
});
export type WorkerInfo = z.infer<typeof workerInfo>;

export const workersResponse = z.object({
  workers: z.array(workerInfo),
  /** A worker silent this long is taken for dead, ms. */
  leaseMs: z.number(),
});
export type WorkersResponse = z.infer<typeof workersResponse>;

export const signalResponse = z.object({ id: z.string(), signal: z.string(), seq: z.number().int() });
export type SignalResponse = z.infer<typeof signalResponse>;

/** One page of runs, newest first; `next` continues after its last run. */
export const runPage = z.object({ runs: z.array(runSummary), next: z.string().optional() });

export const pruneRequest = z
  .object({
    /** Ended runs that ended before this time (epoch ms) are removed, with their logs. */
    endedBefore: z.number().int(),
  })
  .strict();
export const pruneResponse = z.object({ removed: z.array(z.string()) });
export const actionResponse = z.object({
  id: z.string(),
  status: runStatus,
  message: z.string(),
  /** The run's last event seq before this action: follow its events after it (`Last-Event-ID`). */
  seq: z.number().int(),
  /** What was done on the way, e.g. leftover processes of a crashed job that were killed. */
  notes: z.array(z.string()).optional(),
});
export type ActionResponse = z.infer<typeof actionResponse>;

export const errorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    /** Every problem found, e.g. `file:line:col: message` for a pipeline file. */
    problems: z.array(z.string()).optional(),
  }),
});
export type ErrorResponse = z.infer<typeof errorResponse>;

export const healthResponse = z.object({
  /** The process is up and answering: always true (a liveness probe should not restart it for its database). */
  ok: z.literal(true),
  /**
   * A server on PostgreSQL: whether its last statement reached the database; while not, `reason`
   * says why (requests that need it answer 503 meanwhile) and `since` since when (epoch ms).
   */
  storage: z
    .object({ reachable: z.boolean(), reason: z.string().optional(), since: z.number().optional() })
    .optional(),
});

/** One mutating API request as the server's audit log keeps it. */
export const auditEntry = z.object({
  seq: z.number().int(),
  /** When it was answered, epoch ms. */
  at: z.number(),
  /** The name of the token it carried. */
  actor: z.string(),
  method: z.string(),
  /** The route it matched, e.g. `/runs/:id/cancel`. */
  route: z.string(),
  path: z.string(),
  run: z.string().nullable(),
  /** The HTTP status it was answered with. */
  status: z.number().int(),
  /** Its `Idempotency-Key`, if any. */
  key: z.string().nullable(),
});
export type AuditEntry = z.infer<typeof auditEntry>;

/** One page of the audit log, newest first; `next` (a `before` for the next page) is absent on the last. */
export const auditPage = z.object({ entries: z.array(auditEntry), next: z.number().int().optional() });
export type AuditPage = z.infer<typeof auditPage>;

/** The server's configuration as it runs (`GET /config`, admin): never a token or its hash. */
export const configResponse = z.object({
  resources: z.object({ memoryBytes: z.number(), cpu: z.number(), diskBytes: z.number() }),
  locks: z.record(z.string(), z.number().int()),
  workDir: z.string(),
  /** Fairness weight per concurrency key (keys not listed weigh 1). */
  weights: z.record(z.string(), z.number()),
  /** The tokens it accepts, by name, with their roles. */
  tokens: z.array(z.object({ name: z.string(), role: z.enum(["read", "operate", "admin"]) })),
  /** Ended runs older than `olderThanMs` are pruned every `everyMs`; null: kept until pruned. */
  retention: z.object({ olderThanMs: z.number(), everyMs: z.number() }).nullable(),
  /** What its jobs may inherit of its environment: the allow-list and `job_env`. */
  jobEnv: z.array(z.string()),
});
export type ConfigResponse = z.infer<typeof configResponse>;
