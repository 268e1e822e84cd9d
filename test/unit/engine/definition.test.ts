/** Definition-time checks: every inconsistency is rejected with a message naming the actions. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { SagaDefinitionError } from "../../../src/errors.js";

function problems(build: () => unknown): string[] {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(SagaDefinitionError);
    return (error as SagaDefinitionError).problems;
  }
  throw new Error("expected the definition to be rejected");
}

describe("saga definition", () => {
  it("derives the dependency graph from the data flow", () => {
    const built = saga("deploy", { version: 1, input: { repo: z.string() } })
      .action("build", {
        reads: ["repo"],
        produces: { image: z.string() },
        run: ({ repo }) => ({ image: repo }),
      })
      .action("scan", { reads: ["image"], run: () => undefined })
      .action("push", {
        reads: ["image"],
        produces: { digest: z.string() },
        run: ({ image }) => ({ digest: image }),
      })
      .action("notify", { after: ["scan", "push"], run: () => undefined })
      .build();
    expect(built.actions.get("build")!.dependsOn).toEqual([]);
    expect(built.actions.get("push")!.dependsOn).toEqual(["build"]);
    expect(new Set(built.actions.get("notify")!.dependsOn)).toEqual(new Set(["scan", "push"]));
    expect(built.order.indexOf("build")).toBeLessThan(built.order.indexOf("scan"));
    expect(built.order.at(-1)).toBe("notify");
  });

  it("rejects a value nobody produces, naming the reader", () => {
    const found = problems(() =>
      saga("s", { version: 1 })
        // @ts-expect-error "image" is produced by no earlier action: a compile error too
        .action("push", { reads: ["image"], run: () => undefined })
        .build(),
    );
    expect(found).toEqual([`action "push" reads "image", which nothing produces`]);
  });

  it("rejects a value with two producers, naming both", () => {
    expect(
      problems(() =>
        saga("s", { version: 1 })
          .action("a", { produces: { x: z.number() }, run: () => ({ x: 1 }) })
          // @ts-expect-error "x" already has a producer: a compile error too
          .action("b", { produces: { x: z.number() }, run: () => ({ x: 2 }) })
          .build(),
      ),
    ).toEqual([`value "x" has two producers: action "a" and action "b"`]);
    expect(
      problems(() =>
        saga("s", { version: 1, input: { x: z.number() } })
          // @ts-expect-error "x" is the saga input already
          .action("b", { produces: { x: z.number() }, run: () => ({ x: 2 }) })
          .build(),
      ),
    ).toEqual([`value "x" has two producers: the saga input and action "b"`]);
  });

  it("rejects a cycle with its path", () => {
    // Explicit ordering is the only way to write a cycle; the builder's types prevent it,
    // so go around them as JavaScript callers could.
    const untyped = saga("s", { version: 1 }) as unknown as {
      action(name: string, spec: object): typeof untyped;
      build(): unknown;
    };
    const found = problems(() =>
      untyped
        .action("a", { after: ["c"], run: () => undefined })
        .action("b", { after: ["a"], run: () => undefined })
        .action("c", { after: ["b"], run: () => undefined })
        .build(),
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^actions form a cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)$/);
  });

  it("rejects an unknown explicit dependency", () => {
    expect(
      problems(() =>
        saga("s", { version: 1 })
          .action("a", { run: () => undefined })
          // @ts-expect-error "nope" is not an action
          .action("b", { after: ["nope"], run: () => undefined })
          .build(),
      ),
    ).toEqual([`action "b" runs after "nope", which is not an action`]);
  });

  it("reports every problem at once, and bad options", () => {
    const found = problems(() =>
      saga("s", { version: 0 })
        .action("a", { run: () => undefined, timeoutMs: -1, retry: { maxAttempts: 0 } })
        .action("a", { run: () => undefined })
        .sleep("nap", {})
        .poll("p", { everyMs: 0, check: () => ({ done: true, output: {} }) })
        .build(),
    );
    expect(found).toEqual([
      "version must be a positive integer",
      `action "a": timeoutMs must be a positive number of milliseconds, got -1`,
      `action "a": retry.maxAttempts must be an integer >= 1`,
      `two actions are named "a"`,
      `action "nap": give exactly one of durationMs or until`,
      `action "p": everyMs must be a positive number of milliseconds, got 0`,
    ]);
  });

  it("undoes on failure by default, and takes `compensate`, the 0.1 name of `undo`", () => {
    const build = (onFailure?: "undo" | "hold" | "compensate") =>
      saga("s", { version: 1, ...(onFailure && { onFailure }) })
        .action("a", { run: () => undefined })
        .build().onFailure;
    expect([build(), build("undo"), build("compensate"), build("hold")]).toEqual([
      "undo",
      "undo",
      "undo",
      "hold",
    ]);
  });

  it("infers the types of inputs and outputs", () => {
    saga("typed", { version: 1, input: { count: z.number() } })
      .action("double", {
        reads: ["count"],
        produces: { doubled: z.number() },
        run: ({ count }) => ({ doubled: count * 2 }),
      })
      .action("describe", {
        reads: ["doubled", "count"],
        produces: { text: z.string() },
        // @ts-expect-error the output must match the declared schema's type
        run: ({ doubled }) => ({ text: doubled }),
      })
      .build();
  });
});
