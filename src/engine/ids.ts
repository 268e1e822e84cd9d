/** Run ids: ordered by creation time, unique by their random part. */
import { randomBytes } from "node:crypto";

let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** An id ordered by `now`; random bytes come from a pool because one `randomBytes` call per id is costly. */
export function newId(now: number): string {
  if (randomOffset + 5 > randomPool.length) {
    randomPool = randomBytes(5 * 1024);
    randomOffset = 0;
  }
  const random = randomPool.toString("hex", randomOffset, randomOffset + 5);
  randomOffset += 5;
  return `${now.toString(36)}-${random}`;
}
