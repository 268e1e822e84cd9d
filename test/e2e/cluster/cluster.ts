/**
 * Test helpers for a cluster: `slipway serve` workers, each a real process in a directory of its own
 * (its data directory), all on one PostgreSQL database of a throwaway server; a side log in a shared
 * directory that jobs append to, naming the worker they ran on (`$WORKER`).
 */
import { readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll } from "vitest";
import { freshDatabase, type PostgresServer, startPostgres } from "../../../src/testing/postgres.js";
import { tempDir } from "../../helpers.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "../server/server.js";

/** The throwaway PostgreSQL of this test file (`durable`: fsync on, for restarts); undefined (the file skips) when it is not installed. */
export async function clusterServer(
  options: { durable?: boolean } = {},
): Promise<PostgresServer | undefined> {
  const server = await startPostgres(options);
  if (!server && process.env.SLIPWAY_REQUIRE_PG)
    throw new Error("PostgreSQL is required (SLIPWAY_REQUIRE_PG) but not installed");
  afterAll(() => server?.stop());
  return server;
}

/** A worker's directory: its project files and data directory, its database the cluster's. */
export class WorkerProject extends Project {
  constructor(
    readonly database: string,
    readonly name: string,
  ) {
    super();
  }

  override get db(): string {
    return this.database;
  }
}

export interface Worker {
  name: string;
  project: WorkerProject;
  server: Server;
}

export class Cluster {
  /** Jobs append lines here (`$SIDE`); shared by every worker. */
  readonly side: string;
  readonly shared = realpathSync(tempDir());

  private constructor(readonly database: string) {
    this.side = join(this.shared, "side.log");
  }

  static async create(server: PostgresServer, label: string): Promise<Cluster> {
    return new Cluster(await freshDatabase(server.url, label));
  }

  /** Starts a worker named `name` with this config text (`job_env: [WORKER, SIDE, SHARED]` is added). */
  async worker(name: string, config = ""): Promise<Worker> {
    const project = new WorkerProject(this.database, name);
    project.write("slipway.yml", `${config}\njob_env: [WORKER, SIDE, SHARED]\n`);
    const server = await startServer(project, ["--config", "slipway.yml"], {
      env: { WORKER: name, SIDE: this.side, SHARED: this.shared },
    });
    return { name, project, server };
  }

  /** Starts the worker again in its directory (its data directory kept), as a restart on its machine would. */
  async restart(worker: Worker): Promise<Worker> {
    worker.server = await startServer(worker.project, ["--config", "slipway.yml"], {
      env: { WORKER: worker.name, SIDE: this.side, SHARED: this.shared },
    });
    return worker;
  }

  /** The side log's lines. */
  lines(): string[] {
    try {
      return readFileSync(this.side, "utf8").split("\n").filter(Boolean);
    } catch {
      return [];
    }
  }
}

/** Two jobs: `first` notes itself and ends; `second` notes itself and waits for `$SHARED/release`. */
export const TWO_STEP = `name: two-step
inputs:
  n: {}
jobs:
  first:
    run: echo "first \${{ inputs.n }} $WORKER" >> "$SIDE"
  second:
    needs: [first]
    run: |
      echo "second \${{ inputs.n }} $WORKER" >> "$SIDE"
      while [ ! -e "$SHARED/release" ]; do sleep 0.05; done
      echo "end \${{ inputs.n }} $WORKER" >> "$SIDE"
`;
