/** Options of the storage conformance suite, and the test-framework shapes it accepts. */
import type { Storage } from "../../storage/types.js";

export type TestBody = () => Promise<void>;
/** vitest's, jest's and node:test's `it` all fit; `skip` is used when present. */
export type ItLike = ((name: string, fn: TestBody) => void) & {
  skip?: (name: string, fn: TestBody) => void;
};
export type DescribeLike = (name: string, fn: () => void) => void;

export interface CrashChildOptions {
  /** Absolute path or file URL of a module the child process can import (a .ts one needs tsx installed). */
  module: string;
  /** Export of `module` called with `arg`; returns (or resolves to) a Storage on the shared database. */
  exportName: string;
  /** JSON-serializable; must point every call at the same database. */
  arg: unknown;
}

export interface StorageConformanceOptions {
  name: string;
  /**
   * A fresh, empty storage per test (`init` is called by the suite too; it must be idempotent).
   * Called once more while the tests are collected, to see which optional capabilities the backend
   * has (`loadMany`, `getRuns`, `peaks`): that storage is closed without `init`, before any
   * test runs. A case needing a capability the backend lacks is reported skipped; when the factory
   * is async, the case finds out as it runs and skips itself through the framework's context
   * (`skip()` of vitest's and node:test's), or passes without checking anything.
   */
  newStorage: () => Promise<Storage> | Storage;
  describe: DescribeLike;
  it: ItLike;
  /** Test name -> why this backend skips it. */
  skip?: Record<string, string>;
  /** Enables the process-kill test: how a child process opens the same database. */
  crashChild?: CrashChildOptions;
}
