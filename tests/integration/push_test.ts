/**
 * Web Push against a local fake push service that does what a real one must: checks the VAPID
 * JWT against the server's public key and decrypts the aes128gcm body with the subscription's
 * private key (npm:http_ece), which proves the encryption is real.
 */
import assert from "node:assert/strict";
import { fakePushService } from "../fakes/web_push_fake.ts";
import { api, eventually, INGEST_TOKEN, login, SseClient, startServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

Deno.test({
  name:
    "push: a device without an open stream gets an encrypted, VAPID-signed alert; 410 forgets it",
  async fn() {
    let status = 201;
    const push = fakePushService(() => status);
    const s = await startServer({ PUSH_ENDPOINT_ALLOW: push.origin });
    try {
      const { key } = await (await fetch(`${s.url}/api/v1/push/vapid-public-key`)).json();
      push.setVapidKey(key);
      const phone = await login(s.url, "pia");
      const laptop = await login(s.url, "pia");
      // Not an allowed push service: refused (no SSRF through subscriptions).
      const evil = await api(s.url, phone.token, "POST", "/api/v1/push/subscriptions", {
        ...push.subscription("/x"),
        endpoint: "http://169.254.169.254/latest",
      });
      assert.equal(evil.status, 400);
      const sub = push.subscription("/sub/phone");
      assert.equal(
        (await api(s.url, phone.token, "POST", "/api/v1/push/subscriptions", sub)).status,
        201,
      );
      const laptopSub = push.subscription("/sub/laptop");
      assert.equal(
        (await api(s.url, laptop.token, "POST", "/api/v1/push/subscriptions", laptopSub)).status,
        201,
      );
      // The laptop's page is open: it sees the change live, so only the phone is pushed.
      const live = await SseClient.open(`${s.url}/api/v1/stream`, {
        authorization: `Bearer ${laptop.token}`,
      });

      const { json: order } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "NVDA",
        asset_class: "stock",
        side: "buy",
        qty: "3",
      });
      const at = new Date().toISOString();
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
        { order_id: order.id, exec_id: "p-1", type: "new", at },
        {
          order_id: order.id,
          exec_id: "p-2",
          type: "fill",
          at,
          last_qty: "3",
          last_price: "121.4",
        },
      ]);
      await eventually(() => push.received.length === 1);
      const got = push.received[0];
      assert.equal(got.vapidOk, true);
      assert.equal(got.payload.type, "fill");
      assert.equal(got.payload.order_id, order.id);
      assert.equal(got.payload.symbol, "NVDA");
      assert.match(got.payload.title, /Filled/);
      assert.ok(got.payload.body.length > 0);
      assert.equal(got.headers.get("content-encoding"), "aes128gcm");
      assert.equal(got.headers.get("topic"), order.id.replaceAll("-", ""));
      assert.ok(Number(got.headers.get("ttl")) > 0);
      assert.equal(got.headers.get("urgency"), "high");
      await live.until((c) => c.orders().length === 3);
      live.close();
      // The laptop is pushed from now on only once the server has seen its stream go (a
      // moment after the client closes it; longer on a loaded machine).
      await eventually(async () =>
        /blotter_open_streams 0/.test(await (await fetch(`${s.url}/metrics`)).text())
      );

      // The service says the subscription is gone: it is forgotten, not retried forever.
      status = 410;
      const { json: second } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "ZZZZ",
        asset_class: "stock",
        side: "buy",
        qty: "1",
      });
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: second.id,
        exec_id: "p-3",
        type: "rejected",
        at,
        reason: "unknown symbol",
      });
      await eventually(() => push.received.length >= 3); // phone + laptop (no stream now)
      await eventually(async () => {
        const m = await (await fetch(`${s.url}/metrics`)).text();
        return /blotter_push_total\{outcome="token_deleted",platform="web"\} 2/.test(m);
      });
      status = 201;
      const before = push.received.length;
      const { json: third } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "ZZZZ",
        asset_class: "stock",
        side: "buy",
        qty: "2",
      });
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: third.id,
        exec_id: "p-4",
        type: "rejected",
        at,
        reason: "unknown symbol",
      });
      await s.pushSettled(); // the rejection's alert, if any, has been sent or dropped
      assert.equal(push.received.length, before, "no push to forgotten subscriptions");
    } finally {
      await s.stop();
      await push.stop();
    }
  },
});

/** Places an order for `token`'s user and fills it through ingest; returns the order id. */
async function placeAndFill(url: string, token: string, execPrefix: string): Promise<string> {
  const { json: order } = await api(url, token, "POST", "/api/v1/orders", {
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    qty: "1",
  });
  const at = new Date().toISOString();
  const r = await api(url, INGEST_TOKEN, "POST", "/api/v1/executions", [
    { order_id: order.id, exec_id: `${execPrefix}-new`, type: "new", at },
    {
      order_id: order.id,
      exec_id: `${execPrefix}-fill`,
      type: "fill",
      at,
      last_qty: "1",
      last_price: "190",
    },
  ]);
  assert.equal(r.status, 200);
  return order.id;
}

/** Signs in, subscribes this device to the fake service, and returns its token. */
async function subscribedDevice(
  url: string,
  user: string,
  push: ReturnType<typeof fakePushService>,
): Promise<string> {
  const { key } = await (await fetch(`${url}/api/v1/push/vapid-public-key`)).json();
  push.setVapidKey(key);
  const { token } = await login(url, user);
  const sub = push.subscription(`/sub/${crypto.randomUUID()}`);
  assert.equal((await api(url, token, "POST", "/api/v1/push/subscriptions", sub)).status, 201);
  return token;
}

Deno.test({
  name: "push: 429 with Retry-After is retried after that delay, then delivered once",
  async fn() {
    // First answer: busy, come back in 2 s (the dispatcher's own first backoff is 1 s, so a
    // retry that ignored the header would come too early). Then accepted.
    const push = fakePushService((n) =>
      n === 1 ? { status: 429, headers: { "retry-after": "2" } } : 201
    );
    const s = await startServer({ PUSH_ENDPOINT_ALLOW: push.origin });
    try {
      const token = await subscribedDevice(s.url, "rae", push);
      const orderId = await placeAndFill(s.url, token, "r");
      await eventually(() => push.received.length === 2);
      const [first, second] = push.received;
      assert.equal(second.payload.order_id, orderId);
      assert.equal(second.payload.type, "fill");
      // The retry honoured Retry-After: it did not come back before the second had passed.
      assert.ok(second.at - first.at >= 1990, `retried after ${second.at - first.at} ms`);
      await s.pushSettled(); // nothing queued or waiting to retry
      assert.equal(push.received.length, 2, "delivered once, not retried after the 201");
      const m = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(m, /blotter_push_total\{outcome="sent",platform="web"\} 1/);
    } finally {
      await s.stop();
      await push.stop();
    }
  },
});

Deno.test({
  name: "push: a push service that hangs does not hold up live streams",
  async fn() {
    // The service takes every request and never answers (until the test lets go).
    let release!: () => void;
    const hung = new Promise<number>((r) => (release = () => r(201)));
    const push = fakePushService(() => hung);
    const s = await startServer({ PUSH_ENDPOINT_ALLOW: push.origin });
    try {
      // Another device of the same user has no stream, so every fill is pushed to it.
      await subscribedDevice(s.url, "hal", push);
      const { token } = await login(s.url, "hal");
      const live = await SseClient.open(`${s.url}/api/v1/stream`, {
        authorization: `Bearer ${token}`,
      });
      // More fills than the dispatcher has workers: its queue backs up behind the hung service.
      const orders: string[] = [];
      for (let i = 0; i < 12; i++) orders.push(await placeAndFill(s.url, token, `h${i}`));
      await live.until((c) => c.orders().filter((e) => e.type === "fill").length === 12);
      // Every fill reached the screen while alerts were still stuck at the push service.
      assert.ok(push.received.length >= 1, "the push service was reached");
      const m = await (await fetch(`${s.url}/metrics`)).text();
      assert.doesNotMatch(m, /blotter_push_total\{outcome="sent"/, "no push has completed");
      // The backlog is visible to the operator.
      assert.match(m, /blotter_push_queue_depth \d+/);
      assert.deepEqual(
        live.orders().filter((e) => e.type === "fill").map((e) => e.order.id),
        orders,
      );
      live.close();
    } finally {
      release();
      await s.stop();
      await push.stop();
    }
  },
});

Deno.test({
  name: "push: two instances on one database send an event's alert once",
  ignore: NO_POSTGRES,
  async fn() {
    const push = fakePushService(() => 201);
    const schema = freshSchema();
    const env = { DATABASE_URL, DATABASE_SCHEMA: schema, PUSH_ENDPOINT_ALLOW: push.origin };
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      // Both instances hear every event (NOTIFY; on the bus, a because another device of the
      // user has its page open there); both would push without the claim.
      const token = await subscribedDevice(a.url, "ola", push);
      const other = await login(a.url, "ola");
      const page = await SseClient.open(`${a.url}/api/v1/stream`, {
        authorization: `Bearer ${other.token}`,
      });
      await placeAndFill(b.url, token, "two");
      await eventually(() => push.received.length >= 1);
      await eventually(async () => {
        const [ma, mb] = await Promise.all(
          [a, b].map(async (s) => await (await fetch(`${s.url}/metrics`)).text()),
        );
        return /outcome="claimed_elsewhere"\} 1/.test(ma + mb);
      });
      assert.equal(push.received.length, 1);
      page.close();
    } finally {
      await a.stop();
      await b.stop();
      await push.stop();
      await dropSchema(schema);
    }
  },
});
