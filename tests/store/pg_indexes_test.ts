/**
 * The queries that run per stream and per page are served by an index, checked with EXPLAIN on a
 * fresh schema holding enough rows that a sequential scan would be the planner's own choice only
 * if no index fits (seqscan is disabled, so a plan without an index means none exists).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import {
  DATABASE_URL,
  dropSchema,
  freshSchema,
  NO_POSTGRES,
  openTestPgStore,
} from "../pg_helper.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import { silentLogger } from "../../log.ts";

Deno.test({
  name: "postgres: eventsSince, catch-up, paging and exec_id lookups use an index",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const store = await openTestPgStore(schema);
    const sql = postgres(DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: schema },
    });
    try {
      await sql`
        insert into order_events (user_id, seq, order_id, at, body)
        select 'u' || (g % 100), g, gen_random_uuid(), now(), '{}'::json
        from generate_series(1, 20000) g`;
      await sql`
        insert into orders (id, user_id, final, body)
        select gen_random_uuid(), 'u' || (g % 100), g % 3 = 0, '{}'::json
        from generate_series(1, 20000) g`;
      await sql`analyze`;
      const plan = async (query: string) => {
        const rows = await sql.begin(async (tx) => {
          await tx`set local enable_seqscan = off`;
          return await tx.unsafe(`explain ${query}`);
        });
        return rows.map((r) => r["QUERY PLAN"]).join("\n");
      };
      const cases: Array<[string, string]> = [
        [
          "select body from order_events where user_id = 'u1' and seq > 10 order by seq limit 500",
          "order_events_pkey",
        ],
        [
          `select p.user_id, e.body from unnest('{u1,u2}'::text[], '{0,5}'::bigint[]) as p(user_id, after_seq)
           cross join lateral (select body, seq from order_events
             where user_id = p.user_id and seq > p.after_seq order by seq limit 500) e`,
          "order_events_pkey",
        ],
        [
          "select body from orders where user_id = 'u1' order by id desc limit 51",
          "orders_by_user",
        ],
        [
          "select body from orders where user_id = 'u1' and final = false order by id desc limit 51",
          "orders_by_user_final",
        ],
        ["select seqs from executions where exec_id = 'x'", "executions_pkey"],
        [
          "select body from order_events where order_id = '0190a0a0-0000-7000-8000-000000000000' and user_id = 'u1' order by seq",
          "order_events_by_order",
        ],
      ];
      for (const [query, index] of cases) {
        const p = await plan(query);
        const used = new RegExp(
          `(Index Scan using|Index Only Scan using|Bitmap Index Scan on) ${index} `,
        );
        assert.match(p, used, `${query}\n${p}`);
      }
    } finally {
      await sql.end();
      if (!closed) await store.close();
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name: "postgres: the duplicate check stays an index lookup as executions grows from empty",
  ignore: NO_POSTGRES,
  async fn() {
    // Postgres may switch a prepared statement to a generic plan after five runs and keep it until
    // the table is analyzed. Planned on an empty `executions`, the exec_id check was a sequential
    // scan that then grew with the table (autovacuum is off on these machines, so never replanned).
    const schema = freshSchema();
    const store = await openPgStore(DATABASE_URL, { log: silentLogger, schema, max: 8 });
    const sql = postgres(DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: schema },
    });
    let closed = false;
    const fill = (orderId: string, n: number) =>
      ExecutionReport.parse({
        order_id: orderId,
        exec_id: `grow-${crypto.randomUUID()}`,
        type: n === 0 ? "new" : "partial_fill",
        at: new Date().toISOString(),
        ...(n === 0 ? {} : { last_qty: "1", last_price: "10.00" }),
      });
    try {
      // A young deployment: a thousand executions, reports arriving together (so they are checked
      // in groups of many exec_ids, where scanning a small table is the cheaper plan).
      await sql`
        insert into executions (exec_id, user_id, order_id, seqs)
        select 'old-' || g, 'someone', gen_random_uuid(), '{}' from generate_series(1, 1000) g`;
      const orders = await Promise.all(Array.from({ length: 30 }, async (_, u) => {
        const { order } = await store.placeOrder(
          `grower${u}`,
          OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1000" }),
          new Date(),
        );
        return order.id;
      }));
      const round = (n: number) =>
        Promise.all(orders.map((id) => store.applyReport(fill(id, n), new Date())));
      for (let n = 0; n < 15; n++) await round(n);
      await sql`
        insert into executions (exec_id, user_id, order_id, seqs)
        select 'bulk-' || g, 'someone', gen_random_uuid(), '{}' from generate_series(1, 50000) g`;
      for (let n = 15; n < 25; n++) await round(n);
      // A backend publishes its table statistics when it exits (when idle, only every ~10 s).
      await store.close();
      closed = true;
      await sql`select pg_stat_clear_snapshot()`;
      const [{ read }] = await sql<{ read: string }[]>`
        select seq_tup_read as read from pg_stat_user_tables where relid = 'executions'::regclass`;
      // The scans while the table was small read a few thousand rows in all; one scan of the
      // grown table alone would read 51,000.
      assert.ok(Number(read) < 50_000, `executions scanned after it grew (${read} rows read)`);
      // Nor a whole index: a hash or merge join over a full index scan grows with the table too.
      const [{ entries }] = await sql<{ entries: string }[]>`
        select coalesce(sum(idx_tup_read), 0) as entries from pg_stat_user_indexes
        where relid = 'executions'::regclass`;
      assert.ok(
        Number(entries) < 50_000,
        `the executions index read whole (${entries} entries read)`,
      );
    } finally {
      await sql.end();
      if (!closed) await store.close();
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name: "postgres: the fast write's seq check stays an index lookup as user_seqs grows from small",
  ignore: NO_POSTGRES,
  async fn() {
    // The fast write is a prepared statement run once a group: planned generically on a small
    // user_seqs it would hash-join a scan of the whole table, and keep doing so as it grows.
    const schema = freshSchema();
    const store = await openPgStore(DATABASE_URL, { log: silentLogger, schema, max: 8 });
    const sql = postgres(DATABASE_URL, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: schema },
    });
    let closed = false;
    const report = (orderId: string, n: number) =>
      ExecutionReport.parse({
        order_id: orderId,
        exec_id: `seq-${crypto.randomUUID()}`,
        type: n === 0 ? "new" : "partial_fill",
        at: new Date().toISOString(),
        ...(n === 0 ? {} : { last_qty: "1", last_price: "10.00" }),
      });
    try {
      const orders = await Promise.all(Array.from({ length: 10 }, async (_, u) => {
        const { order } = await store.placeOrder(
          `seqs${u}`,
          OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1000" }),
          new Date(),
        );
        return order.id;
      }));
      const round = (n: number) =>
        Promise.all(orders.map((id) => store.applyReport(report(id, n), new Date())));
      for (let n = 0; n < 15; n++) await round(n);
      await sql`
        insert into user_seqs (user_id, seq) select 'bulk-' || g, 0 from generate_series(1, 50000) g`;
      for (let n = 15; n < 25; n++) await round(n);
      await store.close();
      closed = true;
      await sql`select pg_stat_clear_snapshot()`;
      const [{ read }] = await sql<{ read: string }[]>`
        select seq_tup_read as read from pg_stat_user_tables where relid = 'user_seqs'::regclass`;
      // One scan of the grown table alone would read 50,010 rows.
      assert.ok(Number(read) < 50_000, `user_seqs scanned after it grew (${read} rows read)`);
      // Nor a whole index: a hash or merge join over a full index scan grows with the table too.
      const [{ entries }] = await sql<{ entries: string }[]>`
        select coalesce(sum(idx_tup_read), 0) as entries from pg_stat_user_indexes
        where relid = 'user_seqs'::regclass`;
      assert.ok(
        Number(entries) < 50_000,
        `the user_seqs index read whole (${entries} entries read)`,
      );
    } finally {
      await sql.end();
      if (!closed) await store.close();
      await dropSchema(schema);
    }
  },
});
