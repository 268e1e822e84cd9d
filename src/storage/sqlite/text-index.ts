/**
 * The runs text index (migrations 0009, 0010) is filled a second after runs are created, in one
 * write for all created meanwhile, away from the commits that start runs and their first actions (it
 * cost ~25 µs per run inside them). A search scans the runs not indexed yet, so nothing is missed
 * meanwhile; a failure (a full disk) only leaves more to scan.
 */
import type Database from "better-sqlite3";
import { INDEX_NEW_RUNS, type Statement } from "./statements.js";

/** How long new runs wait to be added to the text index, gathered in one write. */
const INDEX_DELAY_MS = 1_000;

export class TextIndex {
  readonly #db: Database.Database;
  #timer: NodeJS.Timeout | undefined;
  #statement: Statement | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Runs were created: index them (and any other not indexed yet) within a second. */
  soon(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#fill();
    }, INDEX_DELAY_MS).unref();
  }

  /** Indexes now what is waiting (the database is closing). */
  flush(): void {
    if (!this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#fill();
  }

  #fill(): void {
    if (!this.#db.open) return;
    try {
      this.#statement ??= this.#db.prepare(INDEX_NEW_RUNS);
      this.#statement.run();
    } catch {
      // Indexed by the next fill; a search scans it meanwhile.
    }
  }
}
