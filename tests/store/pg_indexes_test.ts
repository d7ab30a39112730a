/**
 * The queries that run per stream and per page are served by an index, checked with EXPLAIN on a
 * fresh schema holding enough rows that a sequential scan would be the planner's own choice only
 * if no index fits (seqscan is disabled, so a plan without an index means none exists).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  DATABASE_URL,
  dropSchema,
  freshSchema,
  NO_POSTGRES,
  openTestPgStore,
} from "../pg_helper.ts";

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
      await store.close();
      await dropSchema(schema);
    }
  },
});
