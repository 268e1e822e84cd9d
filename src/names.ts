/** The names users write for jobs, tiers and locks, in pipeline files and the scheduler config alike. */

/** Job, tier and lock names: they become engine action names, where `.` separates matrix legs. */
export const NAME = /^[A-Za-z0-9_-]+$/;
/** {@link NAME} in words, for messages. */
export const NAME_RULE = "letters, digits, `-` and `_`";
