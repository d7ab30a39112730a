/**
 * The JSON API, called in-process through `app.request()` (no socket needed for plain requests):
 * validation, ownership, idempotency, ingest, CSRF, limits.
 */
import assert from "node:assert/strict";
import {
  api,
  INGEST_TOKEN,
  login,
  send,
  startInProcess,
  type Target,
  withApp,
} from "../helpers.ts";
import type { Store } from "../../store/store.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" };

function t(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `api: ${name}`, fn });
}

async function ingest(target: Target, body: unknown, token = INGEST_TOKEN) {
  const res = await send(target, "/api/v1/executions", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

t("orders: place, read, list, events; decimals stay strings", async () => {
  const s = await startInProcess();
  try {
    const { token } = await login(s, "alice");
    const placed = await api(s, token, "POST", "/api/v1/orders", {
      ...ORDER,
      type: "limit",
      limit_price: "187.25",
      qty: "0.000000001",
    });
    assert.equal(placed.status, 201);
    assert.equal(placed.json.status, "pending_new");
    assert.equal(placed.json.qty, "0.000000001");
    assert.equal(placed.json.limit_price, "187.25");
    assert.equal(placed.json.time_in_force, "day");
    const got = await api(s, token, "GET", `/api/v1/orders/${placed.json.id}`);
    assert.deepEqual(got.json, placed.json);
    const list = await api(s, token, "GET", "/api/v1/orders?status=open&limit=1");
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.orders.map((o: { id: string }) => o.id), [placed.json.id]);
    const events = await api(s, token, "GET", `/api/v1/orders/${placed.json.id}/events`);
    assert.deepEqual(events.json.events.map((e: { type: string }) => e.type), ["pending_new"]);
    const crypto = await api(s, token, "POST", "/api/v1/orders", {
      symbol: "btc-usd",
      asset_class: "crypto",
      side: "buy",
      notional: "250.00",
    });
    assert.equal(crypto.json.symbol, "BTC-USD");
    assert.equal(crypto.json.time_in_force, "gtc");
    assert.equal(crypto.json.notional, "250.00");
  } finally {
    await s.stop();
  }
});

t("bad input is a clear 400 and changes nothing", async () => {
  const s = await startInProcess();
  try {
    const { token } = await login(s, "bob");
    for (
      const bad of [
        { ...ORDER, qty: "1e3" },
        { ...ORDER, qty: "-1" },
        { ...ORDER, qty: 10 },
        { ...ORDER, notional: "5" },
        { ...ORDER, type: "limit" },
        { ...ORDER, symbol: "<script>" },
        { ...ORDER, extra: true },
      ]
    ) {
      const res = await api(s, token, "POST", "/api/v1/orders", bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(res.json.error.code, "invalid_request");
      assert.equal(typeof res.json.error.message, "string");
    }
    assert.equal((await api(s, token, "GET", "/api/v1/orders")).json.orders.length, 0);
    assert.equal((await api(s, token, "GET", "/api/v1/orders/not-a-uuid")).status, 400);
    assert.equal((await api(s, token, "GET", "/api/v1/orders?limit=0")).status, 400);
    assert.equal((await api(s, token, "GET", "/api/v1/orders?status=weird")).status, 400);
    assert.equal((await api(s, token, "GET", "/api/v1/orders?cursor=zzz")).status, 400);
    // An unknown query parameter (a cache-buster) is ignored, not refused.
    assert.equal(
      (await api(s, token, "GET", "/api/v1/orders?limit=5&_=1732500000")).status,
      200,
    );
    const noType = await send(s, `/api/v1/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify(ORDER),
    });
    assert.equal(noType.status, 415);
    assert.equal((await noType.json()).error.code, "unsupported_media_type");
    const big = await send(s, `/api/v1/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ ...ORDER, pad: "x".repeat(1024 * 1024 + 10) }),
    });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, "payload_too_large");
    const broken = await send(s, `/api/v1/orders`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(broken.status, 400);
    await broken.body?.cancel();
  } finally {
    await s.stop();
  }
});

t("nobody sees or touches another user's orders", async () => {
  const s = await startInProcess();
  try {
    const alice = await login(s, "alice");
    const mallory = await login(s, "mallory");
    const { json: order } = await api(s, alice.token, "POST", "/api/v1/orders", ORDER);
    for (
      const [method, path, body] of [
        ["GET", `/api/v1/orders/${order.id}`],
        ["GET", `/api/v1/orders/${order.id}/events`],
        ["POST", `/api/v1/orders/${order.id}/cancel`],
        ["PATCH", `/api/v1/orders/${order.id}`, { qty: "1" }],
      ] as const
    ) {
      const res = await api(s, mallory.token, method, path, body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.ok(!JSON.stringify(res.json).includes("alice"));
    }
    assert.equal((await api(s, mallory.token, "GET", "/api/v1/orders")).json.orders.length, 0);
    assert.equal(
      (await api(s, alice.token, "GET", `/api/v1/orders/${order.id}`)).json.status,
      "pending_new",
    );
    assert.equal((await send(s, `/api/v1/orders`)).status, 401);
    assert.equal((await api(s, "forged-token", "GET", "/api/v1/orders")).status, 401);
  } finally {
    await s.stop();
  }
});

t("client_order_id makes placing idempotent; cancel is 202 then 409 once final", async () => {
  const s = await startInProcess();
  try {
    const { token } = await login(s, "carol");
    const body = { ...ORDER, type: "limit", limit_price: "1.00", client_order_id: "c-1" };
    const first = await api(s, token, "POST", "/api/v1/orders", body);
    const again = await api(s, token, "POST", "/api/v1/orders", body);
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    const id = first.json.id;
    assert.equal(
      (await ingest(s, {
        order_id: id,
        exec_id: "v-1",
        type: "new",
        at: new Date().toISOString(),
      })).status,
      201,
    );
    const replace = await api(s, token, "PATCH", `/api/v1/orders/${id}`, {
      limit_price: "1.10",
    });
    assert.equal(replace.status, 202);
    assert.equal(replace.json.status, "pending_replace");
    await ingest(s, {
      order_id: id,
      exec_id: "v-2",
      type: "order_replace_rejected",
      at: new Date().toISOString(),
      reason: "no",
    });
    const cancel = await api(s, token, "POST", `/api/v1/orders/${id}/cancel`);
    assert.equal(cancel.status, 202);
    assert.equal(cancel.json.status, "pending_cancel");
    await ingest(s, {
      order_id: id,
      exec_id: "v-3",
      type: "canceled",
      at: new Date().toISOString(),
    });
    const late = await api(s, token, "POST", `/api/v1/orders/${id}/cancel`);
    assert.equal(late.status, 409);
    assert.equal(late.json.error.code, "conflict");
  } finally {
    await s.stop();
  }
});

t(
  "ingest: 201 applied, 200 duplicate, 409 illegal, 404 unknown, 400 invalid, 401 bad token, batches",
  async () => {
    const s = await startInProcess();
    const off = await startInProcess({ INGEST_TOKEN: "" }).catch(() => null);
    try {
      const { token } = await login(s, "dave");
      const { json: order } = await api(s, token, "POST", "/api/v1/orders", ORDER);
      const at = new Date().toISOString();
      const fill = {
        order_id: order.id,
        exec_id: "x-1",
        type: "partial_fill",
        at,
        last_qty: "4",
        last_price: "187.1",
      };
      assert.equal(
        (await ingest(s, { order_id: order.id, exec_id: "x-0", type: "new", at })).status,
        201,
      );
      const applied = await ingest(s, fill);
      assert.equal(applied.status, 201);
      assert.equal(applied.json.order.filled_qty, "4");
      const dup = await ingest(s, fill);
      assert.equal(dup.status, 200);
      assert.deepEqual(dup.json.events, applied.json.events);
      const over = await ingest(s, { ...fill, exec_id: "x-2", last_qty: "7" });
      assert.equal(over.status, 409);
      assert.equal(over.json.error.code, "illegal_transition");
      assert.equal(
        (await ingest(s, {
          ...fill,
          exec_id: "x-3",
          order_id: "0190b4a0-7c1e-7000-8000-0000000000a1",
        })).status,
        404,
      );
      assert.equal(
        (await ingest(s, { ...fill, exec_id: "x-4", last_qty: "1.5e2" })).status,
        400,
      );
      assert.equal((await ingest(s, fill, "wrong-token-wrong-token")).status, 401);
      const batch = await ingest(s, [fill, {
        ...fill,
        exec_id: "x-5",
        type: "fill",
        last_qty: "6",
        last_price: "187.2",
      }]);
      assert.equal(batch.status, 200);
      assert.deepEqual(batch.json.results.map((r: { status: number }) => r.status), [200, 201]);
      const final = await api(s, token, "GET", `/api/v1/orders/${order.id}`);
      assert.equal(final.json.status, "filled");
      assert.equal(final.json.filled_qty, "10");
      assert.equal(final.json.filled_avg_price, "187.16");
      const metrics = await (await send(s, `/metrics`)).text();
      assert.match(metrics, /blotter_ingest_reports_total\{status="201"\} 3/);
    } finally {
      await s.stop();
      await off?.stop();
    }
  },
);

t("CSRF: a cookie-borne write from another origin is refused and changes nothing", async () => {
  const s = await startInProcess();
  try {
    const form = await send(s, `/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: s.url },
      body: "username=erin",
      redirect: "manual",
    });
    assert.equal(form.status, 303);
    const cookie = form.headers.get("set-cookie")!;
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Lax/i);
    const session = cookie.split(";")[0];
    const evil = await send(s, `/api/v1/orders`, {
      method: "POST",
      headers: {
        cookie: session,
        origin: "https://evil.example",
        "content-type": "application/json",
      },
      body: JSON.stringify(ORDER),
    });
    assert.equal(evil.status, 403);
    assert.equal((await evil.json()).error.code, "forbidden");
    const mine = await send(s, `/api/v1/orders`, {
      method: "POST",
      headers: { cookie: session, origin: s.url, "content-type": "application/json" },
      body: JSON.stringify(ORDER),
    });
    assert.equal(mine.status, 201);
    const list = await send(s, `/api/v1/orders`, { headers: { cookie: session } });
    assert.equal((await list.json()).orders.length, 1);
    const page = await send(s, `/orders`, { headers: { cookie: session } });
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(await page.text(), /<script>(?!<\/script>)|<script>[^<]/);
  } finally {
    await s.stop();
  }
});

t("rate limits answer 429 with Retry-After when on", async () => {
  const s = await startInProcess({ RATE_LIMIT: "on" });
  try {
    const { token } = await login(s, "frank");
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await api(s, token, "POST", "/api/v1/orders", ORDER);
      statuses.push(res.status);
      if (res.status === 429) {
        assert.equal(res.json.error.code, "rate_limited");
        break;
      }
    }
    assert.ok(statuses.filter((x) => x === 201).length >= 10, "at least 10 actions pass");
    assert.equal(statuses[statuses.length - 1], 429);
  } finally {
    await s.stop();
  }
});

t("ops: healthz, readyz, metrics and the VAPID key", async () => {
  const s = await startInProcess();
  try {
    assert.equal((await (await send(s, `/healthz`)).json()).status, "ok");
    const ready = await send(s, `/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const metrics = await (await send(s, `/metrics`)).text();
    assert.match(metrics, /# TYPE blotter_open_streams gauge/);
    assert.match(metrics, /blotter_delivery_latency_seconds_bucket/);
    const key = await (await send(s, `/api/v1/push/vapid-public-key`)).json();
    assert.equal(
      Uint8Array.from(
        atob(key.key.replaceAll("-", "+").replaceAll("_", "/")),
        (c) => c.charCodeAt(0),
      ).length,
      65,
    );
  } finally {
    await s.stop();
  }
});

t(
  "the auth service may end any device session with AUTH_SERVICE_TOKEN; others may not",
  async () => {
    const s = await startInProcess({ AUTH_SERVICE_TOKEN: "service-token-0123456789" });
    try {
      const victim = await login(s, "hal");
      const other = await login(s, "ida");
      const refused = await api(
        s,
        other.token,
        "DELETE",
        `/api/v1/sessions/${victim.session_id}`,
      );
      assert.equal(refused.status, 404);
      assert.equal((await api(s, victim.token, "GET", "/api/v1/orders")).status, 200);
      const ended = await api(
        s,
        "service-token-0123456789",
        "DELETE",
        `/api/v1/sessions/${victim.session_id}`,
      );
      assert.equal(ended.status, 204);
      assert.equal((await api(s, victim.token, "GET", "/api/v1/orders")).status, 401);
    } finally {
      await s.stop();
    }
  },
);

t("PATCH before the venue acknowledged is 202 pending_replace; on a final order 409", async () => {
  // CONTRACT: only a final order refuses a replace. With SIMULATOR=off every order waits in
  // pending_new until a venue reports, so this is the first thing an integrator tries.
  const s = await startInProcess();
  try {
    const { token } = await login(s, "pat");
    const body = { ...ORDER, type: "limit", limit_price: "1.00" };
    const { json: placed } = await api(s, token, "POST", "/api/v1/orders", body);
    assert.equal(placed.status, "pending_new");
    const replace = await api(s, token, "PATCH", `/api/v1/orders/${placed.id}`, { qty: "2" });
    assert.equal(replace.status, 202);
    assert.equal(replace.json.status, "pending_replace");
    const at = new Date().toISOString();
    // The venue's acknowledgement arriving now is accepted and leaves the replace pending.
    assert.equal(
      (await ingest(s, { order_id: placed.id, exec_id: "w-1", type: "new", at }))
        .status,
      201,
    );
    const replaced = await ingest(s, {
      order_id: placed.id,
      exec_id: "w-2",
      type: "replaced",
      at,
      qty: "2",
    });
    assert.equal(replaced.status, 201);
    const final = await api(s, token, "PATCH", `/api/v1/orders/${placed.id}`, { qty: "3" });
    assert.equal(final.status, 409);
    assert.equal(final.json.error.code, "conflict");
  } finally {
    await s.stop();
  }
});

t(
  "dev sign-in takes any username; only empty, over-long or control characters are 400",
  async () => {
    const s = await startInProcess();
    try {
      for (
        const username of ["Ada Lovelace", "trader+1@firm.example", "日本の投資家", "<b>x</b>"]
      ) {
        const res = await api(s, "", "POST", "/api/v1/sessions", { username });
        assert.equal(res.status, 201, username);
        assert.equal(res.json.user_id, username);
      }
      for (const username of ["", "   ", "x".repeat(65), "a\u0000b", "line\nbreak"]) {
        const res = await api(s, "", "POST", "/api/v1/sessions", { username });
        assert.equal(res.status, 400, JSON.stringify(username));
        assert.equal(res.json.error.code, "invalid_request");
      }
    } finally {
      await s.stop();
    }
  },
);

Deno.test("ops: /readyz answers within its bound when the store does not answer at all", async () => {
  // A database with no primary yet (a failover under way) can hold a query until one appears;
  // a health check that times out tells a load balancer less than a 503 with the reason.
  const hanging = (store: Store): Store => ({ ...store, ping: () => new Promise(() => {}) });
  await withApp(async (app) => {
    const res = await app.request("/readyz");
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.message, "the store is not answering");
    const health = await app.request("/healthz");
    assert.equal(health.status, 200);
    await health.body?.cancel();
  }, hanging);
});
