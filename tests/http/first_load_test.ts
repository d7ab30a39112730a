/**
 * A consistent first load: `GET /api/v1/orders` answers `last_event_id`, read together with its
 * rows — every event up to it is reflected in them, none after — so an app that loads its list
 * and then opens the stream from there misses nothing and applies nothing twice, even with
 * reports landing between the two calls. On Deno KV and on Postgres.
 */
import assert from "node:assert/strict";
import {
  api,
  INGEST_TOKEN,
  type Json,
  login,
  SseClient,
  startServer,
  type TestServer,
} from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

const ORDERS = 8;
/** Rounds of list-then-stream, each with reports landing meanwhile. */
const ROUNDS = 4;

async function firstLoadsUnderReports(server: TestServer) {
  const { token } = await login(server.url, `loader-${crypto.randomUUID()}`);
  const ids: string[] = [];
  for (let i = 0; i < ORDERS; i++) {
    const placed = await api(server.url, token, "POST", "/api/v1/orders", {
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "1000",
    });
    ids.push(placed.json.id);
    const ack = await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
      order_id: placed.json.id,
      exec_id: `new-${i}`,
      type: "new",
      at: new Date().toISOString(),
    });
    assert.equal(ack.status, 201);
  }
  let fills = 0;
  let reporting = true;
  // The venue keeps reporting fills, one at a time, all through the rounds.
  const venue = (async () => {
    while (reporting) {
      const n = ++fills;
      const r = await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: ids[n % ORDERS],
        exec_id: `fill-${n}`,
        type: "partial_fill",
        at: new Date().toISOString(),
        last_qty: "1",
        last_price: "187.41",
      });
      assert.equal(r.status, 201);
    }
  })();

  try {
    for (let round = 0; round < ROUNDS; round++) {
      // The app's first load…
      const list = await api(server.url, token, "GET", "/api/v1/orders?status=all&limit=200");
      assert.equal(list.status, 200);
      const fromId: string = list.json.last_event_id;
      assert.match(fromId, /^[1-9][0-9]*\.[A-Za-z0-9_-]{6,16}$/, "last_event_id is SEQ.TAG");
      const from = Number(fromId.split(".")[0]);
      const view = new Map<string, Json>(list.json.orders.map((o: Json) => [o.id, o]));
      assert.equal(view.size, ORDERS);

      // …reflects exactly the events up to `from`: each row is its order's snapshot as of then.
      for (const id of ids) {
        const { json } = await api(server.url, token, "GET", `/api/v1/orders/${id}/events`);
        const asOf = (json.events as Json[]).filter((e) => e.seq <= from).at(-1);
        assert.deepEqual(view.get(id), asOf.order, `order ${id} is not as of ${from}`);
      }

      // …then the stream from there: gapless, no event twice, the view ends as the store's.
      const stream = await SseClient.open(
        `${server.url}/api/v1/stream?last_event_id=${fromId}`,
        { authorization: `Bearer ${token}` },
      );
      try {
        await new Promise((r) => setTimeout(r, 150)); // reports keep landing meanwhile
        const latest = await api(server.url, token, "GET", "/api/v1/orders?limit=200");
        const target = Number(latest.json.last_event_id.split(".")[0]);
        await stream.until((c) => (c.orders().at(-1)?.seq ?? from) >= target, 10_000);
        let last = from;
        for (const event of stream.orders()) {
          assert.equal(event.seq, last + 1, `after ${last} came ${event.seq}`);
          last = event.seq;
          view.set(event.order.id, event.order);
          if (last === target) break;
        }
        assert.deepEqual(
          [...view.values()].sort((a, b) => a.id.localeCompare(b.id)),
          [...latest.json.orders].sort((a: Json, b: Json) => a.id.localeCompare(b.id)),
          `round ${round}: the view is not the store's`,
        );
      } finally {
        stream.close();
      }
    }
  } finally {
    reporting = false;
    await venue;
  }
  assert.ok(fills > ROUNDS, "the venue reported nothing while the app loaded");
}

Deno.test("first load (KV): the list's last_event_id, then the stream, is the store's state", async () => {
  const server = await startServer({ INGEST_TOKEN, RATE_LIMIT: "off" });
  try {
    await firstLoadsUnderReports(server);
    const fresh = await login(server.url, "nobody-yet");
    const empty = await api(server.url, fresh.token, "GET", "/api/v1/orders");
    assert.deepEqual(empty.json, { orders: [], next_cursor: null, last_event_id: null });
  } finally {
    await server.stop();
  }
});

Deno.test({
  name: "first load (Postgres): the list's last_event_id, then the stream, is the store's state",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const server = await startServer({
      INGEST_TOKEN,
      RATE_LIMIT: "off",
      DATABASE_URL,
      DATABASE_SCHEMA: schema,
    });
    try {
      await firstLoadsUnderReports(server);
      const fresh = await login(server.url, "nobody-yet");
      const empty = await api(server.url, fresh.token, "GET", "/api/v1/orders");
      assert.deepEqual(empty.json, { orders: [], next_cursor: null, last_event_id: null });
    } finally {
      await server.stop();
      await dropSchema(schema);
    }
  },
});
