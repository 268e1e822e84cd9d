/** `slipway token`: make an API token, or print the hash of one, for the server config's `tokens:`. */
import { randomBytes } from "node:crypto";
import { tokenHash } from "../../runs/config.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { readTokenFile } from "../connect.js";

export const token: Command = {
  name: "token",
  summary: "Make an API token, or hash one, for the server config's `tokens:`",
  usage: [
    "slipway token new",
    "slipway token hash [FILE]",
    "",
    "`new` prints a new random token and the `hash:` to put in the server config; give the token to",
    "its user (as a file for --token-file). `hash` prints the hash of the token in FILE (one line),",
    'or read from stdin: printf %s "$TOKEN" | slipway token hash. The config keeps only hashes:',
    "",
    "  tokens:",
    '    ci: { role: operate, hash: "sha256:…" }',
  ].join("\n"),
  run(args, io) {
    const { positionals } = parse(args, {}, 2);
    const [action, file] = positionals;
    if (action === "new") {
      if (file !== undefined) throw new UsageError(`unexpected argument "${file}"`);
      const made = randomBytes(24).toString("base64url");
      io.out(`token: ${made}\nhash: ${tokenHash(made)}\n`);
      return EXIT.ok;
    }
    if (action === "hash") {
      io.out(`${tokenHash(readTokenFile(file ?? "/dev/stdin"))}\n`);
      return EXIT.ok;
    }
    throw new UsageError(
      action === undefined ? "token needs `new` or `hash`" : `unknown token action "${action}" (new, hash)`,
    );
  },
};
