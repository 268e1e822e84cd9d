/** Runs one `slipway` command line in-process and collects what it printed. */
import { main } from "../../../src/cli/main.js";

export async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (text) => (out += text), err: (text) => (err += text) });
  return { code, out, err };
}
