/** The forge client for a source's kind. */
import type { ForgeKind } from "../webhooks.js";
import type { Forge, ForgeOptions } from "./forge.js";
import { GiteaForge } from "./gitea.js";
import { GithubForge } from "./github.js";
import { GitlabForge } from "./gitlab.js";

export function createForge(kind: Exclude<ForgeKind, "git">, options: ForgeOptions): Forge {
  switch (kind) {
    case "github":
      return new GithubForge(options);
    case "gitea":
    case "forgejo":
      return new GiteaForge(kind, options);
    case "gitlab":
      return new GitlabForge(options);
  }
}
