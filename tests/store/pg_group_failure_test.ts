/**
 * A report group on Postgres that fails in a way nobody planned for (here: a cached snapshot
 * that makes the lifecycle throw while the group is planned) must still answer every caller of
 * the group, must not leak their places in the write gate, and must leave the store working.
 */
import assert from "node:assert/strict";
import { type Logger, silentLogger } from "../../log.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

const req = () =>
  OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "50" });
const rep = (orderId: string, type: string, fields: Record<string, string> = {}) =>
  ExecutionReport.parse({
    order_id: orderId,
    exec_id: `x-${crypto.randomUUID()}`,
    type,
    at: new Date().toISOString(),
    ...fields,
  });
const fill = (orderId: string) => rep(orderId, "partial_fill", { last_qty: "1", last_price: "2" });

/** Rejects if `p` has not settled by the deadline: a hang fails the test instead of stalling it. */
function answeredWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer after ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

Deno.test({
  name: "postgres report groups: an unexpected error in a group answers every caller of it",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const errors: string[] = [];
    const log: Logger = { ...silentLogger, error: (message) => errors.push(message) };
    const limit = 12;
    const store = await openPgStore(DATABASE_URL, { log, schema, writeQueueLimit: limit });
    try {
      const placed = [];
      for (let i = 0; i < 8; i++) placed.push(await store.placeOrder(`u${i}`, req(), new Date()));
      const acked = [];
      for (const p of placed) {
        acked.push(await store.applyReport(rep(p.order.id, "new"), new Date()));
      }
      // The answer's order is the very object the state cache now holds: corrupt it there.
      const victim = acked[0].order;
      victim.filled_qty = "not a number";

      // Four groups in flight (one report each), then the victim and three others in a group.
      const reports = [...placed.slice(4), placed[0], ...placed.slice(1, 4)].map((p) =>
        store.applyReport(fill(p.order.id), new Date())
      );
      const settled = await answeredWithin(Promise.allSettled(reports), 30_000);
      const victimAnswer = settled[4];
      assert.equal(victimAnswer.status, "rejected");
      assert.ok(errors.some((m) => /report group failed/.test(m)), `logged: ${errors}`);

      // The store keeps working: the gate's count did not leak (a full gate's worth of writes is
      // accepted at once), and the victim's order is read afresh, so its fill now applies.
      const again = await answeredWithin(
        Promise.all([
          ...placed.map((p) => store.applyReport(fill(p.order.id), new Date())),
          ...placed.slice(0, limit - placed.length).map((p) =>
            store.requestCancel(p.user_id, p.order.id, new Date())
          ),
        ]),
        30_000,
      );
      assert.equal(again.length, limit);
      const orders = await Promise.all(placed.map((p) => store.getOrder(p.user_id, p.order.id)));
      assert.ok(orders.every((o) => o !== null && Number(o.filled_qty) >= 1));
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  },
});
