import { storeContract } from "../store_contract.ts";
import { NO_POSTGRES, openTestPgStore } from "../pg_helper.ts";

storeContract({ name: "postgres", open: () => openTestPgStore(), ignore: NO_POSTGRES });
