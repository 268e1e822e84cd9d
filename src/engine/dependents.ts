/** Which actions of a saga (or a group's body) depend on an action, directly or not: what a rollback undoes first. */
import type { Saga } from "../definition/saga.js";

type Graph = Pick<Saga, "actions" | "order">;

/** Per saga or body, each action's transitive dependents; computed once. */
const transitiveDependents = new WeakMap<Graph, Map<string, string[]>>();

/** The actions that depend on `name`, directly or through others. */
export function dependentsOf(saga: Graph, name: string): string[] {
  let table = transitiveDependents.get(saga);
  if (!table) {
    table = new Map();
    for (const action of saga.actions.keys()) table.set(action, []);
    for (const action of saga.order) {
      const seen = new Set<string>();
      const stack = [...saga.actions.get(action)!.dependsOn];
      while (stack.length > 0) {
        const dep = stack.pop()!;
        if (seen.has(dep)) continue;
        seen.add(dep);
        table.get(dep)!.push(action);
        stack.push(...saga.actions.get(dep)!.dependsOn);
      }
    }
    transitiveDependents.set(saga, table);
  }
  return table.get(name) ?? [];
}
