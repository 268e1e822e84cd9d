/** The saga shown in the README, kept here so that it is type-checked and run; keep the two identical. */
import { Executor, MemoryStorage, saga, z } from "slipway";

const deploy = saga("deploy", { version: 1, input: { repo: z.string() } })
  .action("build", {
    reads: ["repo"],
    produces: { image: z.string() },
    run: ({ repo }) => ({ image: `${repo}:1.0.0` }),
    undo: (_input, { image }) => console.log(`deleting ${image}`),
  })
  .action("release", { reads: ["image"], run: ({ image }, ctx) => ctx.log.info({ image }, "released") })
  .build();

const executor = await Executor.open({ storage: new MemoryStorage(), sagas: [deploy] });
const run = await executor.start(deploy, { repo: "shop" }, { runName: "shop-main-1" });
console.log(await run.result());
await executor.close();
