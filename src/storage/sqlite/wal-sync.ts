/**
 * Group fsync of the WAL off the main thread. A batched write commits without SQLite's own fsync
 * (synchronous=NORMAL for that transaction) and is answered only once an fdatasync of the WAL file,
 * run on libuv's thread pool, has finished after it: as durable as synchronous=FULL for everything
 * acknowledged, but the event loop keeps turning (accepting connections, reading requests) while the
 * disk flushes, and every commit made meanwhile shares the next flush.
 */
import { close, fdatasync, openSync } from "node:fs";

export type Fdatasync = (fd: number, done: (error: NodeJS.ErrnoException | null) => void) => void;

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class WalSync {
  readonly #fd: number;
  readonly #fdatasync: Fdatasync;
  /** Waiting for the next flush (their writes may postdate the one in flight). */
  #waiting: Waiter[] = [];
  #inFlight = false;
  #closing: (() => void) | undefined;

  /**
   * Opens the WAL file (it exists once the connection has written); undefined when it cannot be
   * opened, and the caller keeps SQLite's own fsync. The WAL file is never replaced while the
   * connection that wrote it stays open, so this descriptor stays the file's.
   */
  static open(walPath: string, sync: Fdatasync = fdatasync): WalSync | undefined {
    try {
      return new WalSync(openSync(walPath, "r+"), sync);
    } catch {
      return undefined;
    }
  }

  private constructor(fd: number, sync: Fdatasync) {
    this.#fd = fd;
    this.#fdatasync = sync;
  }

  /** Resolves once everything written to the WAL before this call is on disk. */
  durable(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      if (!this.#inFlight) this.#flush();
    });
  }

  /** Waits for the flush in flight, then closes the file. */
  async close(): Promise<void> {
    if (this.#inFlight) await new Promise<void>((resolve) => (this.#closing = resolve));
    await new Promise<void>((resolve) => close(this.#fd, () => resolve()));
  }

  #flush(): void {
    const batch = this.#waiting;
    this.#waiting = [];
    this.#inFlight = true;
    this.#fdatasync(this.#fd, (error) => {
      this.#inFlight = false;
      for (const waiter of batch) {
        if (error) waiter.reject(error);
        else waiter.resolve();
      }
      if (this.#waiting.length > 0) this.#flush();
      else this.#closing?.();
    });
  }
}
