/**
 * The embedded store on Deno KV: what `deno task dev` and small installs run on, with nothing else
 * installed. Composed from:
 *   keys.ts      the key layout, the shared context, the in-process change source
 *   writes.ts    place, cancel/replace and reports: versionstamp-checked atomic writes
 *   reads.ts     order reads, paging and the event log
 *   sessions.ts  sessions        push.ts  push subscriptions and alert claims
 *   devices.ts   native push tokens (FCM, APNs)
 *
 * KV's `watch()` is not a change log (it coalesces and does not cross processes), so this store
 * publishes to its listeners in-process, after commit, in seq order.
 */
import { type Logger, silentLogger } from "../../log.ts";
import { Fallbacks, KeyedMutex } from "../common.ts";
import type { Store } from "../store.ts";
import { kvDevices } from "./devices.ts";
import type { KvContext } from "./keys.ts";
import { ChangeListeners } from "../change_listeners.ts";
import { kvPush } from "./push.ts";
import { kvEventLog, kvOrderReads } from "./reads.ts";
import { kvSessions } from "./sessions.ts";
import { kvWrites } from "./writes.ts";
import { probeValue, WriteGate } from "../write_gate.ts";

/** Options for the KV store. */
export interface KvStoreOptions {
  /** WRITE_QUEUE_LIMIT: reports and order actions waiting to be written at once. */
  writeQueueLimit?: number;
  /** Where a failing change listener is reported. */
  log?: Logger;
}

/** Opens (or creates) the KV store at `path` (`:memory:` for tests). */
export async function openKvStore(path: string, options: KvStoreOptions = {}): Promise<Store> {
  if (path !== ":memory:") {
    const dir = path.replace(/[^/]*$/, "");
    if (dir) await Deno.mkdir(dir, { recursive: true });
  }
  const kv = await Deno.openKv(path);
  const ctx: KvContext = {
    kv,
    changes: new ChangeListeners(options.log ?? silentLogger, { connected: true }),
    mutex: new KeyedMutex(),
    log: options.log ?? silentLogger,
    fallbacks: new Fallbacks(),
  };
  const reads = kvOrderReads(kv);
  const push = kvPush(kv);

  async function getSetting(key: string): Promise<string | null> {
    return (await kv.get<string>(["setting", key])).value;
  }

  // Every write is counted from hand-in to answer; past the limit, or with the disk full, it is
  // refused with a 503.
  const gate = new WriteGate({
    limit: options.writeQueueLimit,
    log: options.log,
    probe: () => kv.set(["setting", "write_probe"], probeValue()),
  });

  return {
    kind: "kv",
    changes: ctx.changes,
    ...gate.wrap(kvWrites(ctx, reads), [
      "placeOrder",
      "requestCancel",
      "requestReplace",
      "applyReport",
    ]),
    ...reads,
    ...kvEventLog(kv),
    ...kvSessions(ctx, push),
    ...push,
    ...kvDevices(kv),
    getSetting,

    async setSettingIfAbsent(key, value) {
      await kv.atomic().check({ key: ["setting", key], versionstamp: null })
        .set(["setting", key], value).commit();
      return (await getSetting(key))!;
    },

    async ping() {
      try {
        await kv.get(["setting", "ping"]);
        return true;
      } catch {
        // Not swallowed: "false" is the answer /readyz reports (503).
        return false;
      }
    },

    unwritable: () => gate.unwritable(),
    get writesRefusedDiskFull() {
      return gate.refusedDiskFull;
    },
    reportFallbacks: () => ctx.fallbacks.counts(),
    bus: () => null,

    close() {
      kv.close();
      return Promise.resolve();
    },
  };
}
