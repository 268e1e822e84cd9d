/**
 * Test helpers for Slipway users and backend authors: a manual clock, the storage conformance suite,
 * record factories, and a throwaway PostgreSQL cluster.
 */
export { ManualClock, settle } from "./clock.js";
export {
  CAPABILITY_NOT_IMPLEMENTED,
  CRASH_TEST_NAME,
  type CrashChildOptions,
  type DescribeLike,
  type ItLike,
  runStorageConformance,
  type StorageConformanceOptions,
  type TestBody,
} from "./conformance/index.js";
export { freshDatabase, type PostgresServer, postgresBinaries, startPostgres } from "./postgres.js";
export {
  BASE_TIME,
  createTransition,
  eventRecord,
  executorRecord,
  runRecord,
  stepRecord,
} from "./records.js";
