/**
 * The JSON Schema editors use for pipeline files: it accepts what the parser accepts (the same keys,
 * the same unit patterns) and the example files, checked with Ajv as an editor would.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { NAME } from "../../../src/names.js";
import { ACCEPTED_KEYS, parsePipeline } from "../../../src/pipeline/parse.js";
import { DURATION_PATTERN, SIZE_PATTERN } from "../../../src/units.js";

type Schema = { [key: string]: unknown };

const root = join(import.meta.dirname, "..", "..", "..");
const schema = JSON.parse(readFileSync(join(root, "schema", "pipeline.schema.json"), "utf8")) as Schema;
const definitions = schema.definitions as Record<string, Schema>;

// A real validator, as editors use: its default strict mode also rejects unknown keywords in the schema itself.
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
const compiled = ajv.compile(schema);

/** Errors of `value` against the schema, as `$.path: keyword` (with the offending key for additionalProperties). */
function validate(value: unknown): string[] {
  compiled(value);
  return (compiled.errors ?? []).map((e) => {
    const extra = e.keyword === "additionalProperties" ? ` ${String(e.params.additionalProperty)}` : "";
    return `$${e.instancePath.replaceAll("/", ".")}: ${e.keyword}${extra}`;
  });
}

const keysOf = (s: unknown) => Object.keys((s as Schema).properties as Schema).sort();

describe("pipeline JSON Schema", () => {
  it("documents every property, for editors to show", () => {
    const missing: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (Array.isArray(node)) {
        for (const [i, item] of node.entries()) visit(item, `${path}[${i}]`);
        return;
      }
      if (node === null || typeof node !== "object") return;
      const object = node as Schema;
      for (const [key, property] of Object.entries((object.properties ?? {}) as Record<string, Schema>)) {
        if (typeof property.description !== "string") missing.push(`${path}.${key}`);
      }
      for (const [key, child] of Object.entries(object)) visit(child, `${path}.${key}`);
    };
    visit(schema, "$");
    expect(missing).toEqual([]);
  });

  it("accepts the keys the parser accepts, and the same unit and name patterns", () => {
    const crashLoop = (definitions.ready!.properties as Schema).crash_loop;
    const include = ((definitions.matrix!.properties as Schema).include as Schema).items;
    const sorted = (keys: readonly string[]) => [...keys].sort();
    expect(keysOf(schema)).toEqual(sorted(ACCEPTED_KEYS.pipeline));
    expect(keysOf((schema.properties as Schema).concurrency)).toEqual(sorted(ACCEPTED_KEYS.concurrency));
    expect(keysOf(definitions.input)).toEqual(sorted(ACCEPTED_KEYS.input));
    expect(keysOf(definitions.secret)).toEqual(sorted(ACCEPTED_KEYS.secret));
    expect(keysOf(definitions.job)).toEqual(sorted(ACCEPTED_KEYS.job));
    expect(keysOf(definitions.loopJob)).toEqual(sorted(ACCEPTED_KEYS.loopJob));
    expect(keysOf((definitions.loopJob!.properties as Schema).loop)).toEqual(sorted(ACCEPTED_KEYS.loop));
    expect(keysOf(definitions.wait)).toEqual(sorted(ACCEPTED_KEYS.wait));
    expect(keysOf(definitions.poll)).toEqual(sorted(ACCEPTED_KEYS.poll));
    expect(keysOf(definitions.ready)).toEqual(sorted(ACCEPTED_KEYS.ready));
    expect(keysOf(crashLoop)).toEqual(sorted(ACCEPTED_KEYS.crashLoop));
    expect(keysOf(definitions.resources)).toEqual(sorted(ACCEPTED_KEYS.resources));
    expect(keysOf(definitions.matrix)).toEqual(sorted(ACCEPTED_KEYS.matrix));
    expect(keysOf(include)).toEqual(sorted(ACCEPTED_KEYS.include));

    expect(definitions.duration!.pattern).toBe(DURATION_PATTERN);
    expect((definitions.size!.oneOf as Schema[])[1]!.pattern).toBe(SIZE_PATTERN);
    expect(definitions.name!.pattern).toBe(NAME.source);
    expect(((schema.properties as Schema).jobs as Schema).propertyNames).toEqual({
      pattern: NAME.source,
    });
  });

  it("accepts the example pipelines, which the parser accepts too", () => {
    const files = [join(import.meta.dirname, "fixtures", "release.yml")];
    const examples = join(root, "examples");
    if (existsSync(examples)) {
      for (const name of readdirSync(examples)) {
        if (/\.ya?ml$/.test(name)) files.push(join(examples, name));
      }
    }
    for (const file of files) {
      const source = readFileSync(file, "utf8");
      expect(() => parsePipeline(source, file), file).not.toThrow();
      expect(validate(parseYaml(source)), file).toEqual([]);
    }
  });

  it("rejects what the parser rejects: unknown keys, unitless durations, two kinds in one job", () => {
    const check = (yaml: string) => validate(parseYaml(yaml));
    expect(check("jobs: { a: { run: x, need: [b] } }")).toContain("$.jobs.a: additionalProperties need");
    expect(check("jobs: { a: { run: x, timeout: 30 } }")).toContain("$.jobs.a.timeout: type");
    expect(check("jobs: { a: { run: x, timeout: 1m30h } }")).toContain("$.jobs.a.timeout: pattern");
    expect(check("jobs: { a: { run: x, wait: { signal: s } } }")).toContain("$.jobs.a: oneOf");
    expect(check("jobs: { a: { wait: { signal: s }, undo: y } }")).toContain("$.jobs.a: not");
    expect(check("jobs: { a: { run: x, resources: { memory: 4G } } }")).toContain(
      "$.jobs.a.resources.memory: anyOf",
    );
    expect(check("jobs: { a: { run: x, resources: { memory: auto, disk: 1024 } } }")).toEqual([]);
    expect(check("jobs: {}")).toContain("$.jobs: minProperties");
    expect(check("jobs: { a: { loop: { max: 2, until: true }, jobs: { b: { run: x } } } }")).toEqual([]);
    expect(check("jobs: { a: { loop: { max: 2 }, jobs: { b: { run: x } }, run: x } }")).toEqual(
      expect.arrayContaining(["$.jobs.a.loop: required", "$.jobs.a: additionalProperties run"]),
    );
    expect(check("jobs: { a.b: { run: x } }")).toContain("$.jobs: propertyNames");
  });
});
