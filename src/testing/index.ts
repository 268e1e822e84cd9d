/**
 * Test helpers for Slipway users and backend authors: a manual clock, the storage conformance suite and
 * record factories.
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
export {
  BASE_TIME,
  createTransition,
  eventRecord,
  executorRecord,
  runRecord,
  stepRecord,
} from "./records.js";
