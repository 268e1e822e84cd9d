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
 * Where a run's time went: the chain of completed jobs that ended last, each after the job it waited
 * for that ended last. A job's time includes its wait for admission, given apart as `queuedMs`.
 */
export const criticalPath = z.object({
  /** From the run's start to the end of the chain's last job, ms. */
  totalMs: z.number(),
  steps: z.array(z.object({ job: z.string(), ms: z.number(), queuedMs: z.number().optional() })),
});
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
  /** Every job that is not running and why, in the queue's words (`GET /queue` gives the same). */
  waiting: z.array(waitingJob),
  /** The child runs its steps started, oldest first (absent from older servers). */
  children: z.array(childRun).optional(),
});
export type RunDetail = z.infer<typeof runDetail>;

export const queueResponse = z.object({ jobs: z.array(queueEntry) });
export type QueueResponse = z.infer<typeof queueResponse>;

export const resourcesResponse = z.object({
  /** Resource pools and locks with their capacity and what is free (empty until admission is configured). */
  pools: z.array(
    z.object({ name: z.string(), capacity: z.number(), free: z.number(), holders: z.array(z.string()) }),
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
});
export type ResourcesResponse = z.infer<typeof resourcesResponse>;

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

export const healthResponse = z.object({ ok: z.literal(true) });

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
