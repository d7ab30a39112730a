/** The streams over real sockets: framing, resume with no gap or duplicate, the replay/live race,
 * reset, isolation between users, logout, the per-user cap, and the HTML stream's fragments. */
import assert from "node:assert/strict";
import { api, eventually, INGEST_TOKEN, login, SseClient, startServer } from "../helpers.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" };

function t(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `stream: ${name}`, fn });
}

const bearer = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

t(
  "JSON events carry id = SEQ.TAG, event: order, one line of data; retry and heartbeats",
  async () => {
    const s = await startServer({ HEARTBEAT_MS: "50" });
    try {
      const { token } = await login(s.url, "ann");
      const res = await fetch(`${s.url}/api/v1/stream`, { headers: bearer(token) });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      assert.equal(res.headers.get("cache-control"), "no-cache");
      assert.equal(res.headers.get("x-accel-buffering"), "no");
      // The middleware's headers reach the stream's head under either server adapter (server/
      // writes node:http's head only after the app has finished the response).
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("content-length"), null);
      await res.body?.cancel();
      const stream = await SseClient.open(`${s.url}/api/v1/stream`, bearer(token));
      const placed = await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      await stream.until((c) =>
        c.orders().length === 1 && c.messages.some((m) => m.comment === "ping")
      );
      assert.equal(stream.messages[0].retry, 1000);
      // The first comment names the heartbeat: three silent intervals mean a dead connection.
      assert.equal(stream.messages.find((m) => m.comment)?.comment, "heartbeat_ms=50");
      const msg = stream.messages.find((m) => m.event === "order")!;
      // CONTRACT: the id is SEQ.TAG, the event's own (random bits fixed at commit).
      assert.match(msg.id!, /^1\.[A-Za-z0-9_-]{6,16}$/);
      const event = JSON.parse(msg.data);
      assert.equal(event.id, msg.id);
      assert.equal(event.seq, 1);
      assert.equal(event.type, "pending_new");
      assert.deepEqual(event.order, placed.json);
      stream.close();
    } finally {
      await s.stop();
    }
  },
);

t(
  "resume from Last-Event-ID (or ?last_event_id, the header winning) with no gap and no duplicate",
  async () => {
    const s = await startServer();
    try {
      const { token } = await login(s.url, "ben");
      for (let i = 0; i < 5; i++) await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      const resumed = await SseClient.open(
        `${s.url}/api/v1/stream?last_event_id=1`,
        bearer(token, { "last-event-id": "2" }),
      );
      await resumed.until((c) => c.orders().length === 3);
      await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      await resumed.until((c) => c.orders().length === 4);
      assert.deepEqual(resumed.orders().map((e) => e.seq), [3, 4, 5, 6]);
      resumed.close();
      const byQuery = await SseClient.open(`${s.url}/api/v1/stream?last_event_id=4`, bearer(token));
      await byQuery.until((c) => c.orders().length === 2);
      assert.deepEqual(byQuery.orders().map((e) => e.seq), [5, 6]);
      byQuery.close();
      const fresh = await SseClient.open(`${s.url}/api/v1/stream`, bearer(token));
      await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      await fresh.until((c) => c.orders().length === 1);
      assert.deepEqual(fresh.orders().map((e) => e.seq), [7]);
      fresh.close();
      for (
        const bad of ["-1", "abc", "1.5", "+1", "1.abcdef.g", "1.abc$def", "1." + "a".repeat(17)]
      ) {
        const res = await fetch(`${s.url}/api/v1/stream`, {
          headers: bearer(token, { "last-event-id": bad }),
        });
        assert.equal(res.status, 400);
        assert.equal((await res.json()).error.code, "invalid_request");
      }
    } finally {
      await s.stop();
    }
  },
);

t("events committed while a stream replays are delivered once, in order", async () => {
  const s = await startServer();
  try {
    const { token } = await login(s.url, "cal");
    const { json: order } = await api(s.url, token, "POST", "/api/v1/orders", {
      ...ORDER,
      qty: "1000",
    });
    const at = () => new Date().toISOString();
    await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
      order_id: order.id,
      exec_id: "n",
      type: "new",
      at: at(),
    });
    // Writers race the stream's replay: 300 fills in flight while it opens from seq 0.
    const writes = Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
          order_id: order.id,
          exec_id: `f-${i}`,
          type: "partial_fill",
          at: at(),
          last_qty: "1",
          last_price: "10",
        })),
    );
    const stream = await SseClient.open(
      `${s.url}/api/v1/stream`,
      bearer(token, { "last-event-id": "0" }),
    );
    await writes;
    await stream.until((c) => c.orders().length === 302);
    assert.deepEqual(
      stream.orders().map((e) => e.seq),
      Array.from({ length: 302 }, (_, i) => i + 1),
    );
    assert.equal(stream.orders()[301].order.status, "partially_filled");
    stream.close();
  } finally {
    await s.stop();
  }
});

t("a position the server cannot serve gets event: reset, never a silent gap", async () => {
  const s = await startServer();
  try {
    const { token } = await login(s.url, "dan");
    await api(s.url, token, "POST", "/api/v1/orders", ORDER);
    const ahead = await SseClient.open(
      `${s.url}/api/v1/stream`,
      bearer(token, { "last-event-id": "99" }),
    );
    await ahead.until((c) => c.messages.some((m) => m.event === "reset"));
    const reset = ahead.messages.find((m) => m.event === "reset")!;
    // The reset's id is the user's newest event's full id.
    assert.match(reset.id!, /^1\.[A-Za-z0-9_-]{6,16}$/);
    await api(s.url, token, "POST", "/api/v1/orders", ORDER);
    await ahead.until((c) => c.orders().length === 1);
    assert.equal(ahead.orders()[0].seq, 2);
    ahead.close();
    // However many digits: still a position, still ahead, still a reset (not a 400).
    const far = await SseClient.open(
      `${s.url}/api/v1/stream`,
      bearer(token, { "last-event-id": "9".repeat(25) }),
    );
    assert.equal(far.status, 200);
    await far.until((c) => c.messages.some((m) => m.event === "reset"));
    far.close();
  } finally {
    await s.stop();
  }
});

t(
  "only the user's own events; a revoked device's stream ends within 1 s, others stay",
  async () => {
    const s = await startServer();
    try {
      const phone = await login(s.url, "eve");
      const laptop = await login(s.url, "eve");
      const stranger = await login(s.url, "zed");
      const a = await SseClient.open(`${s.url}/api/v1/stream`, bearer(phone.token));
      const b = await SseClient.open(`${s.url}/api/v1/stream`, bearer(laptop.token));
      const z = await SseClient.open(`${s.url}/api/v1/stream`, bearer(stranger.token));
      await api(s.url, phone.token, "POST", "/api/v1/orders", ORDER);
      await a.until((c) => c.orders().length === 1);
      await b.until((c) => c.orders().length === 1);
      const revoke = await api(
        s.url,
        laptop.token,
        "DELETE",
        `/api/v1/sessions/${phone.session_id}`,
      );
      assert.equal(revoke.status, 204);
      await a.ended(1_000);
      assert.equal((await api(s.url, phone.token, "GET", "/api/v1/orders")).status, 401);
      await api(s.url, laptop.token, "POST", "/api/v1/orders", ORDER);
      await b.until((c) => c.orders().length === 2);
      assert.equal(b.closed, false);
      assert.equal(z.orders().length, 0);
      b.close();
      z.close();
    } finally {
      await s.stop();
    }
  },
);

t("past the per-user cap the next stream is 429", async () => {
  const s = await startServer({ MAX_STREAMS_PER_USER: "2" });
  try {
    const { token } = await login(s.url, "fay");
    const a = await SseClient.open(`${s.url}/api/v1/stream`, bearer(token));
    const b = await SseClient.open(`${s.url}/api/v1/stream`, bearer(token));
    const c = await fetch(`${s.url}/api/v1/stream`, { headers: bearer(token) });
    assert.equal(c.status, 429);
    assert.equal((await c.json()).error.code, "too_many_streams");
    a.close();
    await eventually(async () => {
      const d = await fetch(`${s.url}/api/v1/stream`, { headers: bearer(token) });
      await d.body?.cancel();
      return d.status === 200;
    });
    b.close();
  } finally {
    await s.stop();
  }
});

t(
  "the HTML stream sends unnamed messages of out-of-band rows with venue text escaped",
  async () => {
    const s = await startServer();
    try {
      const { token } = await login(s.url, "gus");
      const html = await SseClient.open(`${s.url}/stream`, bearer(token));
      const { json: order } = await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: order.id,
        exec_id: "r",
        type: "rejected",
        at: new Date().toISOString(),
        reason: "<script>alert(1)</script>\nhalted",
      });
      await html.until((c) => c.messages.some((m) => m.data.includes('data-status="rejected"')));
      const messages = html.messages.filter((m) => m.data);
      assert.ok(messages.every((m) => m.event === undefined));
      const all = messages.map((m) => m.data).join("");
      assert.match(all, new RegExp(`<tr id="order-${order.id}"`));
      assert.ok(!all.includes("<script>"));
      assert.ok(all.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
      assert.match(all, /hx-swap-oob="beforeend:#toasts"/);
      html.close();
    } finally {
      await s.stop();
    }
  },
);

t("a stalled reader is closed (it resumes later) while other streams keep receiving", async () => {
  const s = await startServer({ STREAM_QUEUE_LIMIT: "20" });
  try {
    const { token } = await login(s.url, "hub");
    const healthy = await SseClient.open(`${s.url}/api/v1/stream`, bearer(token));
    // A raw socket that sends the request and then never reads a byte.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await conn.write(new TextEncoder().encode(
      `GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    ));
    await eventually(async () =>
      /blotter_open_streams 2/.test(await (await fetch(`${s.url}/metrics`)).text())
    );
    const { json: order } = await api(s.url, token, "POST", "/api/v1/orders", {
      ...ORDER,
      qty: "100000",
    });
    const at = new Date().toISOString();
    let n = 0;
    // Enough events to fill the socket buffers and then the stream's queue.
    for (let round = 0; round < 8; round++) {
      const batch = Array.from({ length: 1000 }, () => ({
        order_id: order.id,
        exec_id: `s-${n++}`,
        type: "partial_fill",
        at,
        last_qty: "1",
        last_price: "1.5",
      }));
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", batch);
    }
    await eventually(async () =>
      /blotter_streams_closed_total\{reason="slow consumer"\} 1/.test(
        await (await fetch(`${s.url}/metrics`)).text(),
      )
    );
    await healthy.until((c) => c.orders().length === n + 1, 20_000);
    assert.equal(healthy.closed, false);
    conn.close();
    healthy.close();
  } finally {
    await s.stop();
  }
});
