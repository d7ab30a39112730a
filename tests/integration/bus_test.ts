/**
 * The event bus (EVENT_BUS_URL) end to end: real instances on one Postgres and a private NATS
 * server of their own, which the tests kill and start again. What must hold: every device of a
 * user gets each event once and in order whichever instance wrote it, through a NATS restart, an
 * instance killed mid-write, and a stream opened while that user's events are in flight; and an
 * instance receives only the users it serves.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { SWEEP_MS } from "../../realtime/feed.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import type { Store } from "../../store/store.ts";
import {
  api,
  eventually,
  freePort,
  INGEST_TOKEN,
  login,
  spawnServer,
  SseClient,
  startServer,
  type TestServer,
} from "../helpers.ts";
import { NO_NATS, TcpProxy, withNats } from "../nats_helper.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "100000" };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const fill = (orderId: string, id: string) => ({
  order_id: orderId,
  exec_id: id,
  type: "partial_fill",
  at: new Date().toISOString(),
  last_qty: "1",
  last_price: "10.5",
});
const seqs = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);

/** A test with a fresh schema and a private NATS server. */
function t(name: string, fn: (env: Record<string, string>, nats: NatsLike) => Promise<void>) {
  Deno.test({
    name: `event bus: ${name}`,
    ignore: NO_POSTGRES || NO_NATS,
    async fn() {
      const schema = freshSchema();
      try {
        await withNats((nats) =>
          fn({ DATABASE_URL, DATABASE_SCHEMA: schema, EVENT_BUS_URL: nats.url }, nats)
        );
      } finally {
        await dropSchema(schema);
      }
    },
  });
}
type NatsLike = { kill(): Promise<void>; start(): Promise<void>; port: number };

/**
 * Sends a report until it is answered 201 or 200 (a duplicate), as CONTRACT tells ingest clients
 * to on 503 or a lost answer; `targets()` says which instance to try (one may be gone).
 */
async function sendReport(targets: () => string, body: Record<string, unknown>): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const r = await api(targets(), INGEST_TOKEN, "POST", "/api/v1/executions", body)
      .catch(() => ({ status: 0 }));
    if (r.status === 201 || r.status === 200) return;
    assert.ok(r.status === 503 || r.status === 0, `unexpected ${r.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("a report was never accepted");
}

/** Places an order on `server` and has the venue accept it (seqs 1 and 2). */
async function workingOrder(server: string, token: string): Promise<string> {
  const placed = await api(server, token, "POST", "/api/v1/orders", ORDER);
  assert.equal(placed.status, 201);
  const id = placed.json.id;
  await sendReport(() => server, {
    order_id: id,
    exec_id: `new-${id}`,
    type: "new",
    at: new Date().toISOString(),
  });
  return id;
}

/** A bus figure from an instance's /metrics: messages received, or users subscribed to. */
async function busMetric(server: TestServer, what: "received" | "subscriptions"): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = what === "received"
    ? /blotter_bus_messages_total\{direction="received"\} (\d+)/
    : /blotter_bus_subscriptions (\d+)/;
  return Number(line.exec(text)![1]);
}

/** The bus's state as an instance's /readyz names it. */
async function busState(server: TestServer): Promise<string> {
  return (await (await fetch(`${server.url}/readyz`)).json()).bus;
}

t("a user with devices on two instances: each gets every event once, in order", async (env) => {
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const onA = await login(a.url, "ana");
    const onB = await login(b.url, "ana"); // the same user, another device
    const streamA = await SseClient.open(`${a.url}/api/v1/stream`, bearer(onA.token));
    const streamB = await SseClient.open(`${b.url}/api/v1/stream`, bearer(onB.token));
    const orderId = await workingOrder(a.url, onA.token);
    // Written on both instances in turn, each report once.
    for (let i = 0; i < 60; i++) {
      await sendReport(() => (i % 2 ? a : b).url, fill(orderId, `f-${i}`));
    }
    for (const s of [streamA, streamB]) {
      await s.until((c) => c.orders().length >= 62);
      assert.deepEqual(s.orders().map((e) => e.seq), seqs(62));
      s.close();
    }
  } finally {
    await a.stop();
    await b.stop();
  }
});

t("an instance receives only the users it serves", async (env) => {
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const served = await login(b.url, "served");
    const other = await login(a.url, "other");
    const stream = await SseClient.open(`${b.url}/api/v1/stream`, bearer(served.token));
    await eventually(async () => (await busMetric(b, "subscriptions")) === 1);
    const before = await busMetric(b, "received");
    // Twenty events of a user b does not serve, then two of the one it does.
    const otherOrder = await workingOrder(a.url, other.token);
    for (let i = 0; i < 18; i++) await sendReport(() => a.url, fill(otherOrder, `o-${i}`));
    await workingOrder(a.url, served.token);
    await stream.until((c) => c.orders().length === 2);
    // Each write of the served user is one message; nothing of the other user reached b.
    assert.equal(await busMetric(b, "received") - before, 2);
    stream.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});

t(
  "NATS restarted mid-stream: degraded, caught up from the log, nothing lost or doubled",
  async (env, nats) => {
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      const device = await login(b.url, "bo");
      const orderId = await workingOrder(a.url, device.token);
      const stream = await SseClient.open(`${b.url}/api/v1/stream`, {
        ...bearer(device.token),
        "last-event-id": "0",
      });
      await stream.until((c) => c.orders().length === 2);
      const writer = (async () => {
        for (let i = 0; i < 150; i++) await sendReport(() => a.url, fill(orderId, `f-${i}`));
      })();
      await stream.until((c) => c.orders().length >= 30);
      await nats.kill();
      await eventually(async () => (await busState(b)) === "down");
      // The bus down alone is no outage: ready, and it says so.
      const ready = await fetch(`${b.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal((await ready.json()).bus, "down");
      await new Promise((r) => setTimeout(r, 300)); // writes go on meanwhile
      await nats.start();
      await writer;
      await stream.until((c) => c.orders().length >= 152, 20_000);
      assert.deepEqual(stream.orders().map((e) => e.seq), seqs(152));
      const statuses = () =>
        stream.messages.filter((m) => m.event === "status").map((m) => JSON.parse(m.data).realtime);
      // The events may all be in (the client re-subscribed, and gaps fill from the log) a moment
      // before this instance has confirmed its subscriptions and says the feed is ok again.
      await stream.until(() => statuses().at(-1) === "ok");
      assert.ok(statuses().includes("degraded"), `statuses: ${statuses()}`);
      stream.close();
    } finally {
      await a.stop();
      await b.stop();
    }
  },
);

t("streams opened while the user's events are in flight: no gap, nothing twice", async (env) => {
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    for (let round = 0; round < 8; round++) {
      // A fresh user each round: their first stream on b is the one that subscribes, while a
      // writes. The writer stops as the stream opens, so an event committed between the stream's
      // read of the log and its subscription would be followed by none that could reveal the gap.
      const device = await login(a.url, `flight-${round}`);
      const orderId = await workingOrder(a.url, device.token);
      let open = false;
      let sent = 0;
      const writer = (async () => {
        while (!open || sent < 3) {
          await sendReport(() => a.url, fill(orderId, `${round}-${sent++}`));
        }
      })();
      await new Promise((r) => setTimeout(r, 3 * round));
      const stream = await SseClient.open(`${b.url}/api/v1/stream`, {
        ...bearer(device.token),
        "last-event-id": "2",
      });
      open = true;
      await writer;
      const last = 2 + sent;
      await stream.until((c) => c.orders().at(-1)?.seq === last);
      assert.deepEqual(stream.orders().map((e) => e.seq), seqs(sent, 3), `round ${round}`);
      stream.close();
    }
  } finally {
    await a.stop();
    await b.stop();
  }
});

t("an instance killed mid-write: the other's streams still get every event once", async (env) => {
  const a = await spawnServer({ ...env, INGEST_TOKEN, AUTH_MODE: "dev", RATE_LIMIT: "off" });
  const b = await startServer(env);
  try {
    const device = await login(b.url, "kay");
    const orderId = await workingOrder(b.url, device.token);
    const stream = await SseClient.open(`${b.url}/api/v1/stream`, {
      ...bearer(device.token),
      "last-event-id": "0",
    });
    let target = a.url;
    const writer = (async () => {
      for (let i = 0; i < 100; i++) await sendReport(() => target, fill(orderId, `f-${i}`));
    })();
    await stream.until((c) => c.orders().length >= 20);
    Deno.kill(a.pid, "SIGKILL");
    target = b.url; // the load balancer takes the dead instance out
    await writer;
    // A commit whose publish died with its instance is heard at the user's next event, or at
    // the feed's sweep of the log at the latest.
    await stream.until((c) => c.orders().length >= 102, 30_000);
    assert.deepEqual(stream.orders().map((e) => e.seq), seqs(102));
    stream.close();
  } finally {
    await a.stop().catch(() => "");
    await b.stop();
  }
});

t("a session revoked on one instance ends its streams on another", async (env) => {
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const device = await login(a.url, "rev");
    const stream = await SseClient.open(`${b.url}/api/v1/stream`, bearer(device.token));
    await eventually(async () => (await busMetric(b, "subscriptions")) === 1);
    // The device signs out on a, which is not serving it.
    const out = await api(a.url, device.token, "DELETE", `/api/v1/sessions/${device.session_id}`);
    assert.ok(out.status < 300, `sign-out: ${out.status}`);
    await stream.ended();
  } finally {
    await a.stop();
    await b.stop();
  }
});

/**
 * An instance `b`, a stream there of a user with a working order (seqs 1 and 2 shown), and a
 * "mute" instance whose bus never connects: what it commits, it publishes to nobody, as one
 * killed between its commit and its publish would.
 */
async function withMuteWriter(
  env: Record<string, string>,
  fn: (ctx: { b: TestServer; mute: Store; orderId: string; stream: SseClient }) => Promise<void>,
): Promise<void> {
  const b = await startServer(env);
  const mute = await openPgStore(DATABASE_URL, {
    log: silentLogger,
    schema: env.DATABASE_SCHEMA,
    eventBusUrl: `nats://127.0.0.1:${freePort()}`,
  });
  try {
    const device = await login(b.url, "sil");
    const orderId = await workingOrder(b.url, device.token);
    const stream = await SseClient.open(`${b.url}/api/v1/stream`, {
      ...bearer(device.token),
      "last-event-id": "0",
    });
    await stream.until((c) => c.orders().length === 2);
    await fn({ b, mute, orderId, stream });
    stream.close();
  } finally {
    await mute.close();
    await b.stop();
  }
}

t(
  "an event committed but never published reaches streams by the feed's sweep",
  (env) =>
    withMuteWriter(env, async ({ mute, orderId, stream }) => {
      // Past the catch-up that follows a new subscription (bus_watches.ts SETTLE_MS), which would
      // find the event too.
      await new Promise((r) => setTimeout(r, 1_500));
      await mute.applyReport(ExecutionReport.parse(fill(orderId, "unheard")), new Date());
      // No later event of this user comes to reveal it: only the sweep (SWEEP_MS) finds it.
      await stream.until((c) => c.orders().length === 3, SWEEP_MS + 10_000);
      assert.deepEqual(stream.orders().map((e) => e.seq), seqs(3));
    }),
);

t(
  "a resend of a report whose first copy was never published brings it at once",
  (env) =>
    withMuteWriter(env, async ({ b, mute, orderId, stream }) => {
      const report = fill(orderId, "lost-answer");
      await mute.applyReport(ExecutionReport.parse(report), new Date()); // committed, not told
      const published = async () => {
        const text = await (await fetch(`${b.url}/metrics`)).text();
        return Number(/blotter_bus_messages_total\{direction="published"\} (\d+)/.exec(text)![1]);
      };
      const before = await published();
      // The venue, its answer lost, sends the report again, here: a duplicate (200), told again.
      const again = await api(b.url, INGEST_TOKEN, "POST", "/api/v1/executions", report);
      assert.equal(again.status, 200);
      assert.equal(await published(), before + 1);
      await stream.until((c) => c.orders().length === 3);
      assert.deepEqual(stream.orders().map((e) => e.seq), seqs(3));
    }),
);

t(
  "a revoke made while its instance's link to NATS is cut still ends the streams elsewhere",
  async (env, nats) => {
    // a reaches NATS through a proxy that the test cuts; b keeps its own link all along.
    const proxy = new TcpProxy(nats.port);
    proxy.restore();
    const a = await startServer({ ...env, EVENT_BUS_URL: proxy.url });
    const b = await startServer(env);
    try {
      const device = await login(a.url, "cut");
      const other = await login(a.url, "cut");
      const stream = await SseClient.open(`${b.url}/api/v1/stream`, bearer(device.token));
      const stays = await SseClient.open(`${b.url}/api/v1/stream`, bearer(other.token));
      await eventually(async () => (await busMetric(b, "subscriptions")) === 1);
      proxy.cut();
      await eventually(async () => (await busState(a)) === "down");
      // The revoke's notice cannot leave a; b hears nothing of it now.
      const out = await api(a.url, device.token, "DELETE", `/api/v1/sessions/${device.session_id}`);
      assert.equal(out.status, 204);
      proxy.restore();
      // Back, a asks every instance to catch up, and b finds the session revoked.
      await stream.ended(15_000);
      assert.equal(stays.closed, false, "the user's other device stays live");
      stays.close();
    } finally {
      proxy.cut();
      await a.stop();
      await b.stop();
    }
  },
);

t(
  "a write on another instance makes this one's cache forget the user, not fail a fast write",
  async (env) => {
    const open = () =>
      openPgStore(DATABASE_URL, {
        log: silentLogger,
        schema: env.DATABASE_SCHEMA,
        eventBusUrl: env.EVENT_BUS_URL,
      });
    const a = await open();
    const b = await open();
    try {
      const placed = await a.placeOrder(
        "wes",
        OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "100" }),
        new Date(),
      );
      const report = (id: string) => ExecutionReport.parse(fill(placed.order.id, id));
      for (let i = 0; i < 5; i++) {
        await a.applyReport(report(`a-${i}`), new Date()); // a caches the user as of its write
        const heard = a.bus()!.writtenHeard;
        await b.applyReport(report(`b-${i}`), new Date()); // b writes for them: a's copy is stale
        // a serves no stream of this user, so all it hears is b's batch of written users.
        await eventually(() => a.bus()!.writtenHeard > heard);
      }
      await a.applyReport(report("a-last"), new Date());
      assert.equal(a.reportFallbacks().get("stale_cache") ?? 0, 0);
      assert.equal(await a.currentSeq("wes"), 12);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

t(
  "while its own bus is down, an instance still ends a revoked session's streams",
  async (env, nats) => {
    // b reaches NATS through a proxy that the test cuts: the revoke a tells never reaches b.
    const proxy = new TcpProxy(nats.port);
    proxy.restore();
    const a = await startServer(env);
    const b = await startServer({ ...env, EVENT_BUS_URL: proxy.url });
    try {
      const device = await login(a.url, "far");
      const stream = await SseClient.open(`${b.url}/api/v1/stream`, bearer(device.token));
      await eventually(async () => (await busMetric(b, "subscriptions")) === 1);
      proxy.cut();
      await eventually(async () => (await busState(b)) === "down");
      const out = await api(a.url, device.token, "DELETE", `/api/v1/sessions/${device.session_id}`);
      assert.equal(out.status, 204);
      // b looks for revokes in the store while its feed is down.
      await stream.ended(10_000);
      assert.equal(await busState(b), "down", "ended before the bus came back");
    } finally {
      proxy.cut();
      await a.stop();
      await b.stop();
    }
  },
);
