/**
 * The executor's side of child runs: it starts the child run a step asks for, stops or undoes one
 * when its parent asks, and hands a child's end (a signal its last transition wrote) to the parent.
 */
import type { Saga } from "../definition/saga.js";
import { SlipwayError } from "../errors.js";
import type { JsonObject } from "../json.js";
import { FINAL_STATUSES, type ParentLink, type RunRecord } from "../storage/types.js";
import { CHILD_SIGNAL } from "./child-steps.js";
import type { ExecutorSettings } from "./executor-options.js";
import type { RunHandle, StartOptions } from "./handles.js";
import type { RunState } from "./run-state.js";
import { RunWakeups } from "./wakeups.js";

export abstract class RunChildren extends RunWakeups {
  protected constructor(settings: ExecutorSettings) {
    super(settings);
  }

  /** Starts a run of a registered saga; a child run of `parent` when given. */
  protected abstract createRun(
    saga: Saga,
    input: unknown,
    options: StartOptions,
    parent: ParentLink | null,
  ): Promise<RunHandle>;
  abstract cancel(runId: string, reason?: string): Promise<RunRecord>;
  abstract resume(runId: string): Promise<RunHandle>;

  startChild(
    parent: RunState,
    step: string,
    childId: string,
    saga: { readonly name: string; readonly version: number },
    input: JsonObject,
    done: (error?: unknown) => void,
  ): void {
    try {
      this.settings.hostChild?.({ id: childId, saga, input });
    } catch (error) {
      done(error);
      return;
    }
    // Registered with its parent's saga (or by hand, under the same name and version), or by hostChild.
    const registered = this.registry.get(saga.name, saga.version);
    if (!registered) {
      done(
        new SlipwayError(
          "not_registered",
          `saga ${saga.name} v${saga.version} is not registered with this executor`,
        ),
      );
      return;
    }
    this.createRun(registered, input, { id: childId }, { runId: parent.id, step }).then(
      () => done(),
      (error: unknown) => done(error ?? new Error("the child run could not be started")),
    );
  }

  stopChild(
    childId: string,
    how: "cancel" | "undo",
    parent: ParentLink,
    reason: string,
    done: (found: boolean) => void,
  ): void {
    this.#stopChild(childId, how, parent, reason).then(done, (error: unknown) => {
      // Raced with its end (or with someone acting on it): its end reaches the parent anyway.
      this.logger.warn({ err: error, runId: childId }, `could not ${how} a child run`);
      done(true);
    });
  }

  async #stopChild(
    childId: string,
    how: "cancel" | "undo",
    parent: ParentLink,
    reason: string,
  ): Promise<boolean> {
    const record = await this.storage.getRun(childId);
    if (!record) return false;
    // Acted on here: a host that builds sagas per run takes it first (its saga may be gone since it ended).
    this.settings.hostChild?.({
      id: childId,
      saga: { name: record.saga, version: record.version },
      input: record.input as JsonObject,
    });
    if (how === "cancel") {
      // One that ended (or needs attention) has told its parent already.
      const live = !FINAL_STATUSES.includes(record.status) && record.status !== "needs_attention";
      if (live && record.cancelRequested === null) await this.cancel(childId, reason);
    } else if (record.status === "completed") {
      // A completed child run is final, except to its parent: reopened to undo what it completed.
      await this.reopen(childId, "completed", "undo", () => ({
        run: { status: "compensating", cause: { kind: "parent", ...parent }, endedAt: null },
      }));
    } else if (record.status === "needs_attention") await this.resume(childId);
    return true;
  }

  override ended(run: RunState): void {
    super.ended(run);
    const parent = run.record.parent;
    if (!parent || this.closed || run.status === "failed") return;
    // Its last transition wrote its end as a signal to its parent: hand it over now (the storage poll
    // would, later).
    const name = `${CHILD_SIGNAL}${parent.step}`;
    this.storage.load(parent.runId).then(
      (snapshot) => {
        for (const signal of snapshot?.signals ?? [])
          if (signal.name === name) this.deliver(signal, snapshot!.run);
      },
      (error: unknown) =>
        this.logger.error({ err: error, runId: parent.runId }, "could not tell a parent run its child ended"),
    );
  }
}
