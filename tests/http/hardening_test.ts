/**
 * Hardening, against both stores: every route the app registers is closed to strangers (or on the
 * short public list), hostile input in every field is answered with the right status and a JSON
 * error while stored data stays exactly as it was, generated inputs never make the server fail
 * (fast-check), and text from a venue or a user is escaped wherever it is rendered.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import {
  api,
  INGEST_TOKEN,
  type InProcessBlotter,
  login,
  send,
  startInProcess,
  type Target,
  withApp,
} from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" };

/** Routes anyone may call without credentials, and why. */
const PUBLIC = new Set([
  "GET /login", // the sign-in form
  "POST /login", // dev sign-in
  "GET /healthz",
  "GET /readyz",
  "GET /metrics", // scraped by the operator's Prometheus; carries counts only
  "GET /sw.js",
  "GET /static/*",
  "GET /api/v1/openapi.json",
  "GET /api/v1/push/vapid-public-key", // a public key by definition
  "POST /api/v1/sessions", // dev sign-in
  "GET /api/v1/ws", // the app socket: credentials come in its hello (closed 4401 without them)
  "GET /", // redirects to /orders (then to /login)
]);

/** The routes the app registers, as "METHOD /path" (from the same factory main.ts uses). */
function registeredRoutes(): Promise<string[]> {
  return withApp((app) =>
    Promise.resolve([
      ...new Set(
        app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`),
      ),
    ])
  );
}

/**
 * Runs `fn` against Blotter on KV and on Postgres (fresh schema, dropped after), called
 * in-process: nothing here needs a socket.
 */
function both(name: string, fn: (s: InProcessBlotter) => Promise<void>) {
  Deno.test({
    name: `hardening (kv): ${name}`,
    async fn() {
      const s = await startInProcess();
      try {
        await fn(s);
      } finally {
        await s.stop();
      }
    },
  });
  Deno.test({
    name: `hardening (postgres): ${name}`,
    ignore: NO_POSTGRES,
    async fn() {
      const schema = freshSchema();
      const s = await startInProcess({ DATABASE_URL, DATABASE_SCHEMA: schema });
      try {
        await fn(s);
      } finally {
        await s.stop();
        await dropSchema(schema);
      }
    },
  });
}

/** Everything a user can read about their orders, to compare before and after an attack. */
async function snapshot(target: Target, token: string): Promise<string> {
  const list = await api(target, token, "GET", "/api/v1/orders?status=all&limit=200");
  const events = await Promise.all(
    list.json.orders.map((o: { id: string }) =>
      api(target, token, "GET", `/api/v1/orders/${o.id}/events`)
    ),
  );
  return JSON.stringify([list.json, events.map((e) => e.json)]);
}

both("every registered route is closed to strangers unless it is on the public list", async (s) => {
  const routes = await registeredRoutes();
  assert.ok(routes.length >= 25, `only ${routes.length} routes`);
  const id = crypto.randomUUID();
  for (const route of routes) {
    if (PUBLIC.has(route)) continue;
    const [method, path] = route.split(" ");
    const res = await send(s, path.replace(/:\w+/g, id).replace("*", "x"), {
      method,
      redirect: "manual",
      headers: { "content-type": "application/json", origin: s.url },
      body: method === "GET" || method === "HEAD" ? undefined : "{}",
    });
    const body = await res.text();
    if (path.startsWith("/api/") || path === "/stream") {
      assert.equal(res.status, 401, `${route} answered ${res.status}`);
      assert.ok(JSON.parse(body).error.code, route);
    } else {
      // Pages send strangers to the sign-in form.
      assert.ok([302, 303].includes(res.status), `${route} answered ${res.status}`);
      assert.match(res.headers.get("location") ?? "", /\/login/, route);
    }
  }
});

both("hostile input is refused with a JSON error and harms nothing stored", async (s) => {
  const alice = await login(s, "alice");
  const bob = await login(s, "bob");
  const { json: mine } = await api(s, alice.token, "POST", "/api/v1/orders", ORDER);
  await api(s, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: mine.id,
    exec_id: "h-new",
    type: "new",
    at: new Date().toISOString(),
  });
  const before = await snapshot(s, alice.token);

  const script = "<script>alert(1)</script>";
  const sql = "'); drop table orders; --";
  const badOrders: unknown[] = [
    ...["1e3", "NaN", "Infinity", "-5", "+5", "0", "0.0000000001", "1".repeat(40), " 1", "1,5", ""]
      .map((qty) => ({ ...ORDER, qty })),
    { ...ORDER, qty: 10 },
    { ...ORDER, symbol: script },
    { ...ORDER, symbol: sql },
    { ...ORDER, symbol: "A".repeat(500) },
    { ...ORDER, client_order_id: `${script} x` }, // spaces are not allowed in a client key
    { ...ORDER, client_order_id: sql },
    { ...ORDER, client_order_id: "x".repeat(65) },
    { ...ORDER, side: "short" },
    { ...ORDER, asset_class: "bond" },
    { ...ORDER, type: "limit", limit_price: "1e2" },
    { ...ORDER, time_in_force: script },
    { ...ORDER, __proto__: { admin: true }, extra: 1 },
    [],
    "AAPL",
    null,
  ];
  for (const body of badOrders) {
    const r = await api(s, alice.token, "POST", "/api/v1/orders", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.code, "invalid_request");
    assert.ok(!JSON.stringify(r.json).includes("stack"), "no stack traces");
  }
  const badReports: Array<[unknown, number]> = [
    [{ order_id: mine.id, exec_id: "h1", type: "teleport", at: new Date().toISOString() }, 400],
    [{ order_id: mine.id, exec_id: "h2", type: "fill", at: "yesterday" }, 400],
    [{
      order_id: mine.id,
      exec_id: "h3",
      type: "fill",
      at: new Date().toISOString(),
      last_qty: "10",
      last_price: "NaN",
    }, 400],
    [{ order_id: mine.id, exec_id: script, type: "canceled", at: "x" }, 400],
    [
      { order_id: crypto.randomUUID(), exec_id: "h4", type: "new", at: new Date().toISOString() },
      404,
    ],
    [{ order_id: sql, exec_id: "h5", type: "new", at: new Date().toISOString() }, 400],
    [{
      order_id: mine.id,
      exec_id: "h6",
      type: "fill",
      at: new Date().toISOString(),
      last_qty: "11",
      last_price: "1",
    }, 409], // more than the order's quantity
  ];
  for (const [body, status] of badReports) {
    const r = await api(s, INGEST_TOKEN, "POST", "/api/v1/executions", body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.ok(r.json.error.code, JSON.stringify(r.json));
  }
  // Another user's order, by every route that names one: 404, as if it did not exist.
  for (
    const [method, path, body] of [
      ["GET", `/api/v1/orders/${mine.id}`],
      ["POST", `/api/v1/orders/${mine.id}/cancel`],
      ["PATCH", `/api/v1/orders/${mine.id}`, { qty: "1" }],
    ] as const
  ) {
    assert.equal((await api(s, bob.token, method, path, body)).status, 404);
  }
  // Push endpoints on private or non-push hosts are refused at subscribe time.
  for (
    const endpoint of [
      "http://127.0.0.1:5432/",
      "https://169.254.169.254/latest/meta-data",
      "https://10.0.0.1/push",
      "https://example.com/not-a-push-service",
      "javascript:alert(1)",
    ]
  ) {
    const r = await api(s, alice.token, "POST", "/api/v1/push/subscriptions", {
      endpoint,
      keys: { p256dh: "x", auth: "y" },
    });
    assert.equal(r.status, 400, endpoint);
  }
  // A cross-origin form post with the victim's cookie is refused.
  const csrf = await send(s, `/orders`, {
    method: "POST",
    redirect: "manual",
    headers: {
      cookie: `blotter_session=${alice.token}`,
      origin: "https://evil.example",
      "content-type": "application/x-www-form-urlencoded",
    },
    body: "symbol=AAPL&asset_class=stock&side=buy&type=market&qty=1&time_in_force=day",
  });
  await csrf.body?.cancel();
  assert.equal(csrf.status, 403);

  assert.equal((await send(s, `/healthz`)).status, 200);
  assert.equal(await snapshot(s, alice.token), before, "stored data unchanged");
});

both("generated order and report bodies never make the server fail", async (s) => {
  const { token } = await login(s, "fuzz");
  const { json: order } = await api(s, token, "POST", "/api/v1/orders", ORDER);
  const decimalish = fc.oneof(
    fc.string(),
    fc.constantFrom("1", "0.5", "1e3", "-1", "NaN", "00.1", ".5", "5.", "1_000", "１"),
    fc.double().map(String),
  );
  const orderBody = fc.record({
    symbol: fc.oneof(fc.constantFrom("AAPL", "BTC-USD", "VFIAX"), fc.string()),
    asset_class: fc.oneof(fc.constantFrom("stock", "etf", "mutual_fund", "crypto"), fc.string()),
    side: fc.constantFrom("buy", "sell", "hold"),
    type: fc.constantFrom("market", "limit", "stop", "stop_limit", "iceberg"),
    qty: fc.option(decimalish),
    notional: fc.option(decimalish),
    limit_price: fc.option(decimalish),
    time_in_force: fc.constantFrom("day", "gtc", "ioc", "fok", "forever"),
  }, { requiredKeys: [] });
  await fc.assert(
    fc.asyncProperty(orderBody, async (body) => {
      const r = await api(s, token, "POST", "/api/v1/orders", body);
      // Either it is a valid order (and then every decimal comes back as a string) or a 400.
      const parsed = OrderRequest.safeParse(body);
      if (parsed.success) {
        assert.equal(r.status, 201);
        assert.equal(typeof r.json.qty === "string" || r.json.qty === null, true);
      } else assert.equal(r.status, 400, JSON.stringify(r.json));
    }),
    { numRuns: 60 },
  );
  const reportBody = fc.record({
    order_id: fc.constantFrom(order.id, crypto.randomUUID(), "nope"),
    exec_id: fc.string({ minLength: 0, maxLength: 80 }),
    type: fc.constantFrom("new", "partial_fill", "fill", "canceled", "rejected", "weird"),
    at: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
    last_qty: fc.option(decimalish),
    last_price: fc.option(decimalish),
    reason: fc.option(fc.string({ maxLength: 300 })),
  }, { requiredKeys: ["order_id", "type"] });
  await fc.assert(
    fc.asyncProperty(reportBody, async (body) => {
      const r = await api(s, INGEST_TOKEN, "POST", "/api/v1/executions", body);
      assert.ok(
        [200, 201, 400, 404, 409].includes(r.status),
        `${r.status} for ${JSON.stringify(body)}`,
      );
      if (!ExecutionReport.safeParse(body).success) assert.equal(r.status, 400);
    }),
    { numRuns: 80 },
  );
  assert.equal((await send(s, `/healthz`)).status, 200);
});

both("a <script> in a venue's reject reason is text in the row and the toast", async (s) => {
  const { token } = await login(s, "esc");
  const reason = `<script>alert("x")</script><img src=x onerror=alert(1)>`;
  const html = await send(s, `/stream`, {
    headers: { authorization: `Bearer ${token}`, "last-event-id": "0" },
  });
  assert.equal(html.status, 200);
  const { json: order } = await api(s, token, "POST", "/api/v1/orders", ORDER);
  await api(s, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: order.id,
    exec_id: "esc-1",
    type: "rejected",
    at: new Date().toISOString(),
    reason,
  });
  // Read the HTML stream until the rejection's toast has arrived.
  const reader = html.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("toast-rejected")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  assert.match(text, /toast-rejected/);
  assert.match(text, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
  assert.ok(!text.includes("<script>alert"), "no live script in the stream");
  assert.ok(!text.includes("<img src=x"), "no live markup in the stream");
  // The page rendered on the server: the row (and its reason) escaped too.
  const page = await (await send(s, `/orders/${order.id}`, {
    headers: { cookie: `blotter_session=${token}` },
  })).text();
  assert.match(page, /&lt;script&gt;/);
  assert.ok(!page.includes("<script>alert"));
});

Deno.test("security headers: pages carry the strict page CSP; the JSON API the REST set, errors included", async () => {
  const b = await startInProcess();
  try {
    const page = await send(b, "/login");
    await page.body?.cancel();
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal(page.headers.get("x-frame-options"), "SAMEORIGIN");
    for (
      const res of [
        await send(b, "/api/v1/orders"), // 401
        await send(b, "/api/v1/executions", { method: "POST", body: "{}" }), // 401
        await send(b, "/api/v1/openapi.json"), // 200
        await send(b, "/api/v1/nothing-here"), // 404
      ]
    ) {
      await res.body?.cancel();
      assert.equal(
        res.headers.get("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'",
      );
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("x-frame-options"), "DENY");
      assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin");
      assert.match(res.headers.get("strict-transport-security") ?? "", /max-age=/);
      assert.equal(res.headers.get("x-xss-protection"), null); // page-only headers stay off
    }
  } finally {
    await b.stop();
  }
});
