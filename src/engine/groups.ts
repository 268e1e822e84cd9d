/**
 * A run's groups: loops, whose body runs again until its condition holds, and fan-outs, whose body
 * runs once per item of a list known only at run time. Each iteration or item adds its steps to the
 * run's plan (run-plan.ts), where they run, wait, fail and are undone like any other step; the
 * group's own step only counts them and ends when they are done.
 */
import type { ActionDefinition, GroupDefinition } from "../definition/types.js";
import { SlipwayError, ValidationError } from "../errors.js";
import { assertJson, type JsonObject } from "../json.js";
import { RunDecisions } from "./decisions.js";
import type { Changes } from "./run-state.js";

type Group = ActionDefinition & { group: GroupDefinition };

export abstract class GroupedRun extends RunDecisions {
  /** Starts a group, or continues it after `executor.retry` with the iterations or items it had. */
  protected beginGroup(changes: Changes, action: ActionDefinition, now: number): boolean {
    const group = action as Group;
    const prev = this.stepRecords.get(group.name);
    let state: JsonObject;
    try {
      state =
        group.kind === "loop" ? { iteration: Math.max(1, this.plan.count(group.name)) } : this.#items(group);
    } catch (error) {
      this.setStep(changes, group.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
      this.fail(changes, group, error, now, true);
      return true;
    }
    this.setStep(changes, group.name, {
      status: "waiting",
      attempt: (prev?.attempt ?? 0) + 1,
      state,
      startedAt: prev?.startedAt ?? now,
    });
    this.markRunning(changes);
    const count = group.kind === "loop" ? (state.iteration as number) : (state.items as unknown[]).length;
    this.event(
      changes,
      "action:waiting",
      group.name,
      group.kind === "loop" ? { iteration: count } : { items: count },
    );
    for (let index = 1; index <= count; index++) this.plan.expand(group.name, index);
    return true;
  }

  /** A fan-out's items, checked: a list of JSON values, no longer than its limit. */
  #items(group: Group): JsonObject {
    const items = group.group.items!(this.inputOf(group));
    if (!Array.isArray(items))
      throw new ValidationError(
        "invalid_output",
        `forEach "${group.name}": items must be a list, got ${items === null ? "null" : typeof items}`,
      );
    if (items.length > group.group.max)
      throw new SlipwayError(
        "gave_up",
        `forEach "${group.name}": ${items.length} items, over its limit of ${group.group.max} (max)`,
      );
    assertJson(items, `items of forEach "${group.name}"`);
    return { items };
  }

  protected settleGroups(changes: Changes, now: number): boolean {
    let changed = false;
    for (const group of this.plan.groups) {
      if (this.stepRecords.get(group.name)?.status !== "waiting") continue;
      changed =
        (group.kind === "loop"
          ? this.#settleLoop(changes, group, now)
          : this.#settleFanOut(changes, group, now)) || changed;
      if (!this.goingForward) return changed;
    }
    return changed;
  }

  /** After an iteration's steps all completed: end the loop, give up, or add the next iteration. */
  #settleLoop(changes: Changes, group: Group, now: number): boolean {
    const iteration = this.plan.count(group.name);
    if (!this.#done(group, iteration)) return false;
    const values = this.scopes.get(`${group.name}#${iteration}`) ?? {};
    let verdict: unknown;
    try {
      verdict = group.group.until!(values, iteration);
    } catch (error) {
      this.fail(changes, group, error, now, true);
      return true;
    }
    if (verdict === true) {
      this.complete(changes, group, { [group.name]: values } as JsonObject, now);
      return true;
    }
    const why = typeof verdict === "string" && verdict !== "" ? verdict : undefined;
    if (iteration >= group.group.max) {
      const message = `gave up after ${iteration} iteration${iteration === 1 ? "" : "s"}${why ? `: ${why}` : ""}`;
      this.fail(changes, group, new SlipwayError("gave_up", message), now, true);
      return true;
    }
    // The group's row is not written for it: the next iteration's steps are (or, when none could start
    // yet, the same decision is made again from the same values after a restart).
    const next = iteration + 1;
    this.plan.expand(group.name, next);
    this.event(changes, "loop:iteration", group.name, { iteration: next, ...(why && { after: why }) });
    return true;
  }

  /** After every item's steps completed: the fan-out's value is the list of their values. */
  #settleFanOut(changes: Changes, group: Group, now: number): boolean {
    const count = this.plan.count(group.name);
    const values: unknown[] = [];
    for (let index = 1; index <= count; index++) {
      if (!this.#done(group, index)) return false;
      values.push(this.scopes.get(`${group.name}#${index}`) ?? {});
    }
    this.complete(changes, group, { [group.name]: values } as JsonObject, now);
    return true;
  }

  #done(group: Group, index: number): boolean {
    return this.plan
      .stepsOf(group.name, index)
      .every((name) => this.stepRecords.get(name)?.status === "completed");
  }
}
