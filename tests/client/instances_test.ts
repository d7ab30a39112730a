/**
 * 20 clients of the library, 200 reports each, over two Blotter instances sharing one Postgres:
 * each client connected to one instance, the reports sent to both; every view ends equal to its
 * user's list, with no event applied twice.
 */
import assert from "node:assert/strict";
import { BlotterClient } from "../../client/src/index.ts";
import { api, eventually, INGEST_TOKEN, login, startServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

Deno.test({
  name: "client: 20 clients × 200 reports over two instances on Postgres: every view exact",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const env = { DATABASE_URL, DATABASE_SCHEMA: schema, HEARTBEAT_MS: "1000" };
    const a = await startServer(env);
    const b = await startServer(env);
    const clients: BlotterClient[] = [];
    try {
      const users = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const here = i % 2 ? a : b;
        const { token } = await login(here.url, `u${i}`);
        const placed = await api(here.url, token, "POST", "/api/v1/orders", {
          symbol: "AAPL",
          asset_class: "stock",
          side: "buy",
          qty: "100000",
        });
        const client = new BlotterClient({ baseUrl: here.url, token });
        const seen = new Set<number>();
        client.on("order", (_o, e) => {
          if (!e) return;
          assert.ok(!seen.has(e.seq), `u${i}: seq ${e.seq} applied twice`);
          seen.add(e.seq);
        });
        clients.push(client);
        await client.start();
        return { token, orderId: placed.json.id as string, client, url: here.url };
      }));
      await Promise.all(users.map((u) => eventually(() => u.client.state === "live")));
      // 200 reports per user, in 4 batches of 50, alternating between the instances.
      for (let round = 0; round < 4; round++) {
        await Promise.all(users.map(async (u, i) => {
          const to = (round + i) % 2 ? a : b;
          const batch = Array.from({ length: 50 }, (_, k) => ({
            order_id: u.orderId,
            exec_id: `${i}-${round}-${k}`,
            type: round === 0 && k === 0 ? "new" : "partial_fill",
            at: new Date().toISOString(),
            ...(round === 0 && k === 0 ? {} : { last_qty: "1", last_price: "187.41" }),
          }));
          const res = await api(to.url, INGEST_TOKEN, "POST", "/api/v1/executions", batch);
          assert.equal(res.status, 200);
          for (const r of res.json.results) assert.equal(r.status, 201);
        }));
      }
      for (const u of users) {
        await eventually(() => u.client.order(u.orderId)?.filled_qty === "199", 20_000);
        const list = await api(u.url, u.token, "GET", "/api/v1/orders?status=all");
        assert.deepEqual(u.client.orders(), list.json.orders);
        assert.equal(u.client.lastEventId, list.json.last_event_id);
      }
    } finally {
      for (const c of clients) await c.stop();
      await a.stop();
      await b.stop();
      await dropSchema(schema);
    }
  },
});
