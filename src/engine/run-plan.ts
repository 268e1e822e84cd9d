/**
 * What a run runs: its saga's actions, in a topological order, with who depends on whom. Decisions
 * walk the plan, not the saga, so that work a run decides as it goes can join it.
 */
import type { Saga } from "../definition/saga.js";
import type { ActionDefinition } from "../definition/types.js";
import { dependentsOf } from "./dependents.js";

export class RunPlan {
  readonly #saga: Saga;

  constructor(saga: Saga) {
    this.#saga = saga;
  }

  /** Step names, dependencies first. */
  get order(): readonly string[] {
    return this.#saga.order;
  }

  /** The definition a step runs. */
  action(name: string): ActionDefinition {
    const action = this.#saga.actions.get(name);
    if (!action) throw new Error(`run plan: no step "${name}"`);
    return action;
  }

  /** The steps that depend on `name`, directly or not: what an undo undoes first. */
  dependentsOf(name: string): readonly string[] {
    return dependentsOf(this.#saga, name);
  }
}
