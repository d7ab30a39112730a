/**
 * The Postgres fast path, seen from the wire: a report group whose orders this instance has
 * cached costs one statement (no BEGIN, no reads), and an unknown order costs one read first.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
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

Deno.test({
  name: "postgres fast path: cached orders cost one statement a group; an unknown one a read first",
  ignore: NO_POSTGRES,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const schema = freshSchema();
    const sent: string[] = [];
    const onQuery = (q: string) => sent.push(q.trim().split(/\s+/).slice(0, 3).join(" "));
    const a = await openPgStore(DATABASE_URL, { log: silentLogger, schema, onQuery });
    const b = await openPgStore(DATABASE_URL, { log: silentLogger, schema });
    try {
      const placed = await Promise.all(
        Array.from({ length: 30 }, (_, i) => a.placeOrder(`u${i}`, req(), new Date())),
      );
      await Promise.all(placed.map((p) => a.applyReport(rep(p.order.id, "new"), new Date())));
      sent.length = 0;
      const fills = await Promise.all(
        placed.map((p) =>
          a.applyReport(
            rep(p.order.id, "partial_fill", { last_qty: "1", last_price: "2" }),
            new Date(),
          )
        ),
      );
      assert.ok(fills.every((f) => f.events[0].seq === 3));
      assert.ok(sent.length > 0 && sent.length <= 30, `${sent.length} statements`);
      assert.deepEqual(new Set(sent), new Set(["with s as"]), `sent: ${[...new Set(sent)]}`);

      // An order placed on the other instance: one read (order + owner + seq), then the write.
      const other = await b.placeOrder("stranger", req(), new Date());
      sent.length = 0;
      const applied = await a.applyReport(rep(other.order.id, "new"), new Date());
      assert.equal(applied.events[0].seq, 2);
      assert.deepEqual(sent, ["select o.user_id, s.seq,", "with s as"]);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  },
});
