/**
 * The Postgres fast path, seen from the wire: a report group whose orders this instance has
 * cached costs one statement (no BEGIN, no reads), and an unknown order costs one read first.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import { connect } from "../../store/pg/connect.ts";
import { openWriters } from "../../store/pg/transaction.ts";
import { fastWrite, loadMissing, planFast } from "../../store/pg/fast_write.ts";
import type { GroupedReport } from "../../store/report_group.ts";
import postgres from "postgres";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { eventually } from "../helpers.ts";

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
      assert.deepEqual(new Set(sent), new Set(["with l as"]), `sent: ${[...new Set(sent)]}`);

      // An order placed on the other instance: one read (order + owner + seq), then the write.
      const other = await b.placeOrder("stranger", req(), new Date());
      sent.length = 0;
      const applied = await a.applyReport(rep(other.order.id, "new"), new Date());
      assert.equal(applied.events[0].seq, 2);
      assert.deepEqual(sent, ["select o.user_id, s.seq,", "with l as"]);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name:
    "postgres: text travels through both write paths byte for byte (quotes, backslashes, unicode)",
  ignore: NO_POSTGRES,
  async fn() {
    // The write statements' parameters are array literals and record-separated JSON texts built
    // by store/pg/wire.ts, which Postgres takes apart again: a slip in quoting or escaping shows
    // as a changed string, here in a user id (quoted elements), a client order id and a reason
    // (JSON bodies) as odd as the API lets them be.
    const schema = freshSchema();
    const a = await openPgStore(DATABASE_URL, { log: silentLogger, schema });
    const b = await openPgStore(DATABASE_URL, { log: silentLogger, schema });
    const odd = `a"b\\c{d},e'f\\"g}NULL`;
    const reason = `"quoted" \\ back\\slash {braces,commas} NULL \n new line; ünïcödé 中文 📈`;
    const user = `o"d\\d {u,s} NULL ü`;
    try {
      const placed = await a.placeOrder(
        user,
        OrderRequest.parse({
          symbol: "AAPL",
          asset_class: "stock",
          side: "buy",
          qty: "50",
          client_order_id: odd,
        }),
        new Date(),
      );
      const accepted = await a.applyReport(rep(placed.order.id, "new"), new Date()); // now cached
      const filled = await a.applyReport(
        rep(placed.order.id, "partial_fill", { last_qty: "1", last_price: "2" }),
        new Date(),
      );
      const canceled = await a.applyReport(
        rep(placed.order.id, "canceled", { reason }),
        new Date(),
      );
      // Read back by the other instance, which has nothing cached: what Postgres stored.
      const stored = await b.eventsSince(user, 0, 100);
      const all = [placed, accepted, filled, canceled].flatMap((r) => r.events);
      assert.deepEqual(stored, all);
      assert.equal(stored.at(-1)!.order.client_order_id, odd);
      assert.equal(stored.at(-1)!.reason, reason);
      assert.deepEqual(await b.getOrder(user, placed.order.id), canceled.order);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name:
    "postgres fast path: a group whose users arrived out of user_id order does not deadlock with another instance's locked path",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const store = await openPgStore(DATABASE_URL, { log: silentLogger, schema });
    const ctx = await connect(DATABASE_URL, { log: silentLogger, schema });
    const writers = openWriters(ctx);
    const other = postgres(DATABASE_URL, {
      max: 1,
      connection: { search_path: schema },
      onnotice: () => {},
    });
    try {
      const o1 = await store.placeOrder("u1", req(), new Date());
      const o2 = await store.placeOrder("u2", req(), new Date());
      const w = await writers.acquire();
      await loadMissing(ctx, w.sql, [o1.order.id, o2.order.id]);
      writers.release(w);
      const p = (id: string): GroupedReport => ({ report: rep(id, "new"), now: new Date() });
      // u2's report arrived first; the locked path (reports.ts) takes u1 and then u2.
      const plan = planFast(ctx, [p(o2.order.id), p(o1.order.id)]);
      assert.equal(plan.fast.length, 2);
      let wrote!: () => void;
      const fastStarted = new Promise<void>((r) => (wrote = r));
      let raceSetUp!: () => void;
      const fastWaits = new Promise<void>((r) => (raceSetUp = r));
      const locked = other.begin(async (tx) => {
        await tx`select 1 from user_seqs where user_id = 'u1' for update`;
        wrote();
        // Only once the fast write has taken what it can and waits for u1 does this side ask
        // for u2: had the fast write locked in arrival order, it would hold u2 by now.
        await fastWaits;
        await tx`select 1 from user_seqs where user_id = 'u2' for update`;
      });
      await fastStarted;
      const w2 = await writers.acquire();
      const [{ pid }] = await w2.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      // Sent now (a postgres.js query runs once something awaits it).
      const fast = Promise.resolve(fastWrite(ctx, w2.sql, plan));
      await eventually(async () => {
        const [row] = await ctx
          .sql`select wait_event_type from pg_stat_activity where pid = ${pid}`;
        return row?.wait_event_type === "Lock";
      });
      raceSetUp();
      const results = await Promise.allSettled([fast, locked]);
      writers.release(w2);
      const codes = results.map((r) =>
        r.status === "rejected" ? (r.reason as { code?: string }).code : "ok"
      );
      assert.ok(!codes.includes("40P01"), `a deadlock: ${codes}`);
    } finally {
      await other.end({ timeout: 1 });
      await writers.end();
      await ctx.sql.end({ timeout: 1 });
      await store.close();
      await dropSchema(schema);
    }
  },
});
