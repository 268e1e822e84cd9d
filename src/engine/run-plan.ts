/**
 * What a run runs: its saga's actions, plus the steps its groups add as it goes (each iteration of a
 * loop, each item of a fan-out: `attempts#2.fix`), in a topological order, with who depends on whom.
 * Decisions walk the plan, not the saga. The plan is rebuilt from the run's stored steps, so a run
 * continues after a crash with the same iterations and items.
 */
import type { Saga } from "../definition/saga.js";
import type { ActionDefinition, GroupDefinition } from "../definition/types.js";
import type { StepRecord } from "../storage/types.js";
import { dependentsOf } from "./dependents.js";

/** One run of a group's body: iteration or item `index` (from 1) of `group`. */
export interface Instance {
  group: ActionDefinition & { group: GroupDefinition };
  index: number;
  /** The body action this step runs, under its own name. */
  template: ActionDefinition;
  /** `attempts#2`: what names the instance's steps and keys its values. */
  scope: string;
}

/** `attempts#2.fix` → group `attempts`, index 2, body action `fix`. Action names have no `#`. */
const INSTANCE_NAME = /^([^#]+)#(\d+)\.(.+)$/;

/** The group, index (from 1) and body action a step's name says it runs, if it is a group's step. */
export function parseStepName(name: string): { group: string; index: number; action: string } | undefined {
  const match = INSTANCE_NAME.exec(name);
  return match ? { group: match[1]!, index: Number(match[2]), action: match[3]! } : undefined;
}

export class RunPlan {
  readonly #saga: Saga;
  /** The saga's order until a group adds steps; then this plan's own copy, which grows. */
  #order: readonly string[];
  #ownOrder: string[] | undefined;
  readonly #steps = new Map<string, { definition: ActionDefinition; instance: Instance }>();
  /** Per group, how many iterations or items were added. */
  readonly #count = new Map<string, number>();

  /** The plan of a run of `saga` whose stored steps are `steps` (none for a new run). */
  constructor(saga: Saga, steps: Iterable<StepRecord> = []) {
    this.#saga = saga;
    this.#order = saga.order;
    let counts: Map<string, number> | undefined;
    for (const step of steps) {
      const added = addedBy(saga, step);
      if (!added) continue;
      counts ??= new Map();
      counts.set(added.group, Math.max(counts.get(added.group) ?? 0, added.count));
    }
    for (const [group, count] of counts ?? []) for (let i = 1; i <= count; i++) this.expand(group, i);
  }

  /** Step names, dependencies first; steps added by groups come last, in the order they were added. */
  get order(): readonly string[] {
    return this.#order;
  }

  /** The definition a step runs. */
  action(name: string): ActionDefinition {
    const action = this.#saga.actions.get(name) ?? this.#steps.get(name)?.definition;
    if (!action) throw new Error(`run plan: no step "${name}"`);
    return action;
  }

  /** The group iteration or item a step belongs to, if any. */
  instance(name: string): Instance | undefined {
    return this.#steps.get(name)?.instance;
  }

  /** Whether any group added steps (runs without groups skip the scope lookups). */
  get hasInstances(): boolean {
    return this.#steps.size > 0;
  }

  /** The groups of the saga. */
  get groups(): readonly (ActionDefinition & { group: GroupDefinition })[] {
    return groupsOf(this.#saga);
  }

  /** How many iterations or items of `group` were added. */
  count(group: string): number {
    return this.#count.get(group) ?? 0;
  }

  /** The steps of iteration or item `index` of `group`, dependencies first. */
  stepsOf(group: string, index: number): string[] {
    const definition = this.#saga.actions.get(group)!.group!;
    return definition.order.map((inner) => `${group}#${index}.${inner}`);
  }

  /** Adds iteration or item `index` of `group` (once; `index` follows the last one added). */
  expand(group: string, index: number): void {
    if (index <= this.count(group)) return;
    const action = this.#saga.actions.get(group) as ActionDefinition & { group: GroupDefinition };
    const scope = `${group}#${index}`;
    const names: string[] = [];
    for (const inner of action.group.order) {
      const template = action.group.actions.get(inner)!;
      const name = `${scope}.${inner}`;
      const definition: ActionDefinition = {
        ...template,
        name,
        dependsOn: template.dependsOn.map((dep) => `${scope}.${dep}`),
      };
      this.#steps.set(name, { definition, instance: { group: action, index, template, scope } });
      names.push(name);
    }
    if (!this.#ownOrder) this.#order = this.#ownOrder = [...this.#order];
    this.#ownOrder.push(...names);
    this.#count.set(group, index);
  }

  /** The steps that depend on `name`, directly or not: what an undo undoes first. */
  dependentsOf(name: string): readonly string[] {
    if (!this.hasInstances) return dependentsOf(this.#saga, name);
    const instance = this.instance(name);
    const out: string[] = [];
    let outer: string;
    if (instance) {
      const { group, index, template, scope } = instance;
      for (const inner of dependentsOf(group.group, template.name)) out.push(`${scope}.${inner}`);
      // A later iteration came after this one, and may have used what it did.
      if (group.kind === "loop")
        for (let i = index + 1; i <= this.count(group.name); i++) out.push(...this.stepsOf(group.name, i));
      out.push(group.name);
      outer = group.name;
    } else outer = name;
    for (const dependent of dependentsOf(this.#saga, outer)) {
      out.push(dependent);
      if (this.#saga.actions.get(dependent)?.group)
        for (let i = 1; i <= this.count(dependent); i++) out.push(...this.stepsOf(dependent, i));
    }
    if (!instance && this.#saga.actions.get(name)?.group)
      for (let i = 1; i <= this.count(name); i++) out.push(...this.stepsOf(name, i));
    return out;
  }
}

/**
 * At least how many iterations or items of which group a stored step says were added: a group's
 * state counts them (some may not have started yet), a step of iteration 3 says 3 were.
 */
function addedBy(saga: Saga, step: StepRecord): { group: string; count: number } | undefined {
  const action = saga.actions.get(step.action);
  if (action) {
    const state = step.state;
    if (!action.group || !state) return undefined;
    if (action.kind === "loop" && typeof state.iteration === "number")
      return { group: action.name, count: state.iteration };
    if (action.kind === "each" && Array.isArray(state.items))
      return { group: action.name, count: state.items.length };
    return undefined;
  }
  const parsed = parseStepName(step.action);
  if (!parsed || !saga.actions.get(parsed.group)?.group) return undefined;
  return { group: parsed.group, count: parsed.index };
}

const groupLists = new WeakMap<Saga, (ActionDefinition & { group: GroupDefinition })[]>();

function groupsOf(saga: Saga): (ActionDefinition & { group: GroupDefinition })[] {
  let list = groupLists.get(saga);
  if (!list) {
    list = [...saga.actions.values()].filter(
      (a): a is ActionDefinition & { group: GroupDefinition } => a.group !== undefined,
    );
    groupLists.set(saga, list);
  }
  return list;
}
