/** A temporary copy of the examples for an end-to-end test: their state stays out of the checkout. */
import { cpSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Project } from "../cli/harness.js";

const examples = fileURLToPath(new URL("../../../examples", import.meta.url));

/** A project holding the example pipeline files and their fake tools. */
export function project(): Project {
  const p = new Project();
  for (const name of readdirSync(examples))
    if (name.endsWith(".yml")) cpSync(join(examples, name), join(p.dir, name));
  cpSync(join(examples, "tools"), join(p.dir, "tools"), { recursive: true });
  return p;
}
