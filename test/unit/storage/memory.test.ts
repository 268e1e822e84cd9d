/** Runs the storage conformance suite against MemoryStorage. */
import { describe, it } from "vitest";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { CRASH_TEST_NAME, runStorageConformance } from "../../../src/testing/index.js";

runStorageConformance({
  name: "memory",
  newStorage: () => new MemoryStorage(),
  describe,
  it,
  skip: { [CRASH_TEST_NAME]: "in-memory state does not outlive its process" },
});
