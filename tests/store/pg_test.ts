import { storeContract } from "../store_contract.ts";
import { instancesContract } from "../store_instances_contract.ts";
import { dropSchema, freshSchema, NO_POSTGRES, openTestPgStore } from "../pg_helper.ts";
import { DATABASE_URL } from "../pg_helper.ts";
import { silentLogger } from "../../log.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import { TEST_BUS_URL } from "../nats_helper.ts";

storeContract({
  name: TEST_BUS_URL ? "postgres on the bus" : "postgres",
  open: () => openTestPgStore(),
  ignore: NO_POSTGRES,
});

instancesContract({
  name: TEST_BUS_URL ? "postgres on the bus" : "postgres",
  ignore: NO_POSTGRES,
  async openPair() {
    const schema = freshSchema();
    const open = () =>
      openPgStore(DATABASE_URL, { log: silentLogger, schema, max: 4, eventBusUrl: TEST_BUS_URL });
    const a = await open();
    const b = await open();
    return {
      a,
      b,
      async close() {
        await a.close();
        await b.close();
        await dropSchema(schema);
      },
    };
  },
});
