import { storeContract } from "../store_contract.ts";
import { instancesContract } from "../store_instances_contract.ts";
import { openKvStore } from "../../store/kv/mod.ts";

storeContract({ name: "kv", open: () => openKvStore(":memory:") });

instancesContract({
  name: "kv",
  async openPair() {
    // Two store objects on one file: two processes' worth of mutexes sharing the data.
    const dir = await Deno.makeTempDir();
    const a = await openKvStore(`${dir}/blotter.kv`);
    const b = await openKvStore(`${dir}/blotter.kv`);
    return {
      a,
      b,
      async close() {
        await a.close();
        await b.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
});
