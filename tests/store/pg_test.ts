import { storeContract } from "../store_contract.ts";
import { NO_POSTGRES, openTestPgStore, PG_ROLLBACK_TIMER } from "../pg_helper.ts";

storeContract({
  name: "postgres",
  open: () => openTestPgStore(),
  ignore: NO_POSTGRES,
  sanitizersOffBecause: PG_ROLLBACK_TIMER,
});
