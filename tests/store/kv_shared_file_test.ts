/**
 * Two KV handles on one file (two processes sharing it, which the KV store supports): SQLite
 * answers a commit that finds the file's write lock held with a TypeError "database is locked".
 * Every write path must take that as a lost race and decide again, ending at worst in the store's
 * busy error (a 503), never in a raw TypeError (a 500).
 */
import assert from "node:assert/strict";
import { AppError } from "../../orders/errors.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import type { Store } from "../../store/store.ts";

let clock = new Date("2026-11-24T15:30:00.000Z").getTime();
const tick = () => new Date(++clock);
const order = () =>
  OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "100" });

/** The failures that are not the store's busy answer (AppError "unavailable"). */
function unexpected(results: PromiseSettledResult<unknown>[]): unknown[] {
  return results.flatMap((r) =>
    r.status === "rejected" && !(r.reason instanceof AppError && r.reason.code === "unavailable")
      ? [r.reason]
      : []
  );
}

async function withPair(fn: (a: Store, b: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const a = await openKvStore(`${dir}/blotter.kv`);
  const b = await openKvStore(`${dir}/blotter.kv`);
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "kv (shared file): concurrent writes through two handles end in a result or the busy error",
  async fn() {
    await withPair(async (a, b) => {
      const users = Array.from({ length: 20 }, (_, i) => `u${i}`);
      const placed = await Promise.allSettled(
        Array.from(
          { length: 400 },
          (_, i) => (i % 2 ? a : b).placeOrder(users[i % users.length], order(), tick()),
        ),
      );
      assert.deepEqual(unexpected(placed), []);
      const orders = placed.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
      assert.ok(orders.length > 0);

      // The user's own actions and the venue's reports, through both handles at once.
      const acted = await Promise.allSettled(orders.flatMap((p, i) => [
        (i % 2 ? a : b).requestCancel(p.user_id, p.order.id, tick()),
        (i % 2 ? b : a).applyReport(
          ExecutionReport.parse({
            order_id: p.order.id,
            exec_id: `x-${crypto.randomUUID()}`,
            type: "partial_fill",
            last_qty: "1",
            last_price: "10",
            at: tick().toISOString(),
          }),
          tick(),
        ),
      ]));
      // A report may also be refused by the lifecycle once the cancel won: a 409, not a 500.
      assert.deepEqual(
        unexpected(acted).filter((e) => !(e instanceof AppError && e.status === 409)),
        [],
      );

      // Whatever was written kept every user's seq gapless.
      for (const u of users) {
        const events = await a.eventsSince(u, 0, 10_000);
        assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
      }
    });
  },
});
