import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // Tracks executors, servers and child processes, and fails a test that leaks one (test/leaks.ts).
    setupFiles: ["test/setup.ts"],
    // SLIPWAY_TEST_STORAGE=postgres: one PostgreSQL cluster for the run (test/storage-backend.ts).
    globalSetup: ["test/global-setup.ts"],
    // After-hooks run last-registered first, so the leak check of test/setup.ts runs after the
    // cleanups of the test file and its harnesses.
    sequence: { hooks: "stack" },
    // Limits for a hung test, not for a slow one: waits inside tests are bounded far below this
    // (test/wait.ts), and a busy machine makes an end-to-end test take several times its idle time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
