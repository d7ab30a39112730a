import { storeContract } from "../store_contract.ts";
import { openKvStore } from "../../store/kv/mod.ts";

storeContract({ name: "kv", open: () => openKvStore(":memory:") });
