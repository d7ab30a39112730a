/**
 * Never a silently stale screen, in a real browser: the server dies and comes back, the stream
 * route fails so the page polls, the browser goes offline, and (with Postgres) the change feed is
 * lost and found. Each state is shown in the indicator and the banner, and a screenshot of each is
 * saved under test-artifacts/ to be looked at.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { NatsServer, NO_NATS, TEST_BUS_URL } from "../nats_helper.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { api, INGEST_TOKEN, login, SseClient, startServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

const ROW = "#orders-body tr[id^=order-]";

/** Records every state the indicator and the server's banner pass through (runs in the page). */
const RECORD_STATES = `
  window.states = [];
  window.realtime = [];
  new MutationObserver(() => {
    const s = document.querySelector("#connection").dataset.state;
    if (window.states[window.states.length - 1] !== s) window.states.push(s);
    const b = document.querySelector("#realtime-banner");
    const r = b ? b.dataset.realtime : "none";
    if (window.realtime[window.realtime.length - 1] !== r) window.realtime.push(r);
  }).observe(document.body, { subtree: true, attributes: true, childList: true });
`;

const order = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "5" };
const report = (orderId: string, execId: string, type: string, extra = {}) => ({
  order_id: orderId,
  exec_id: execId,
  type,
  at: new Date().toISOString(),
  ...extra,
});

/**
 * A server on a KV file (so a restart keeps its data), a signed-in page, and one order the page
 * shows as submitted: the start of the restart tests.
 */
async function pageWithOrder(user: string) {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/blotter.kv`;
  const server = await startServer({ KV_PATH: kvPath });
  const browser = await launch();
  const page = await browser.newPage();
  await signIn(page, server.url, user);
  const { token } = await login(server.url, user);
  const { json: placed } = await api(server.url, token, "POST", "/api/v1/orders", order);
  await page.waitForSelector(`#order-${placed.id}[data-status=pending_new]`);
  return { dir, kvPath, server, port: String(server.port), browser, page, placed };
}

function t(name: string, fn: () => Promise<void>, ignore = NO_BROWSER) {
  Deno.test({ name: `e2e: ${name}`, ignore, fn });
}

t("the server dies with the page open and comes back: the page recovers by itself", async () => {
  const fx = await pageWithOrder("rita");
  const { dir, kvPath, port, browser, page, placed } = fx;
  let server = fx.server;
  try {
    // The server goes away (as on a deploy or a crash): the page says so within seconds.
    await server.stop();
    await page.waitForSelector("#connection:not([data-state=live])", { timeout: 10_000 });
    assert.equal(await page.isVisible("#conn-banner"), true);
    assert.match(await page.textContent("#conn-banner .msg") ?? "", /Reconnecting|delayed/);
    await page.screenshot({ path: await artifactPath("resilience-server-down") });

    // While it is down, the venue fills the order (straight into the store it shares).
    const store = await openKvStore(kvPath);
    for (
      const r of [report(placed.id, "x1", "new"), {
        ...report(placed.id, "x2", "fill"),
        last_qty: "5",
        last_price: "190.10",
      }]
    ) {
      await store.applyReport(ExecutionReport.parse(r), new Date());
    }
    await store.close();

    // Back on the same address: the page reconnects by itself (no reload) and catches up from
    // the seq it last saw, showing the order in its final state.
    server = await startServer({ KV_PATH: kvPath, PORT: port });
    await page.waitForSelector("#connection[data-state=live]", { timeout: 15_000 });
    await page.waitForSelector(`#order-${placed.id}[data-status=filled]`, { timeout: 10_000 });
    assert.equal(await page.locator(ROW).count(), 1, "one row, not a duplicate");
    assert.equal(await page.isVisible("#conn-banner"), false);
    await page.screenshot({ path: await artifactPath("resilience-server-back") });
  } finally {
    await browser.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

t("a stream route that keeps failing falls back to polling, and offline is said so", async () => {
  const server = await startServer();
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, server.url, "sam");
    await page.evaluate(RECORD_STATES);
    const { token } = await login(server.url, "sam");

    // A proxy in the way now answers the stream with 502; the live stream drops.
    await page.route("**/stream**", (route) => route.fulfill({ status: 502, body: "bad gateway" }));
    await page.evaluate(`document.querySelector("#live")._htmx.sse.reader.cancel()`);
    await page.waitForSelector("#connection[data-state=polling]", { timeout: 20_000 });
    assert.match(await page.textContent("#conn-banner .msg") ?? "", /refreshing every 5 s/);
    await page.screenshot({ path: await artifactPath("resilience-polling") });

    // Polling still brings changes to the screen.
    const { json: placed } = await api(server.url, token, "POST", "/api/v1/orders", order);
    await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
      report(placed.id, "p1", "new"),
      report(placed.id, "p2", "fill", { last_qty: "5", last_price: "101" }),
    ]);
    await page.waitForSelector(`#order-${placed.id}[data-status=filled]`, { timeout: 15_000 });

    // Offline: said in words; back online: streaming again once the route works.
    await context.setOffline(true);
    await page.waitForSelector("#connection[data-state=offline]", { timeout: 10_000 });
    assert.equal(await page.textContent("#conn-banner .msg"), "You are offline");
    await page.screenshot({ path: await artifactPath("resilience-offline") });
    await page.unroute("**/stream**");
    await context.setOffline(false);
    await page.waitForSelector("#connection[data-state=live]", { timeout: 15_000 });
    const states = await page.evaluate<string[]>("window.states");
    assert.deepEqual(
      states.filter((s, i) => states.indexOf(s) === i),
      ["reconnecting", "polling", "offline", "live"].filter((s) => states.includes(s)),
    );
    assert.ok(states.includes("reconnecting") && states.includes("polling"), states.join(" → "));
    assert.equal(await page.locator(ROW).count(), 1);
  } finally {
    await browser.close();
    await server.stop();
  }
});

t("with Postgres, losing the change feed shows the banner, polls, and recovers", async () => {
  const schema = freshSchema();
  // In the bus pass the bus is the change feed: a private NATS server, to kill and start again.
  const nats = TEST_BUS_URL ? new NatsServer() : null;
  await nats?.start();
  const server = await startServer({
    DATABASE_URL,
    DATABASE_SCHEMA: schema,
    ...(nats && { EVENT_BUS_URL: nats.url }),
  });
  const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await signIn(page, server.url, "pat");
    await page.evaluate(RECORD_STATES);
    const { token } = await login(server.url, "pat");
    const { json: placed } = await api(server.url, token, "POST", "/api/v1/orders", order);
    await page.waitForSelector(`#order-${placed.id}`);

    // Keep killing the listener's backend for a while, so the feed stays down long enough (or
    // with the bus, its server, until the end of that while).
    const killUntil = Date.now() + 4_000;
    let sawBanner = false;
    await nats?.kill();
    while (Date.now() < killUntil) {
      if (!nats) {
        await admin`
        select pg_terminate_backend(pid) from pg_stat_activity
        where query ilike 'listen%' and application_name = 'blotter' and pid <> pg_backend_pid()`;
      }
      if (!sawBanner && await page.isVisible("#realtime-banner")) {
        sawBanner = true;
        assert.match(
          await page.textContent("#realtime-banner") ?? "",
          /Real-time updates temporarily unavailable/,
        );
        assert.equal(await page.getAttribute("#connection", "data-state"), "polling");
        await page.screenshot({ path: await artifactPath("resilience-feed-lost") });
        // A fill while the feed is down reaches the screen by polling (or by catch-up).
        await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
          report(placed.id, "f1", "new"),
          report(placed.id, "f2", "fill", { last_qty: "5", last_price: "99" }),
        ]);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(sawBanner, "the banner showed while the feed was down");
    await nats?.start();
    await page.waitForSelector("#realtime-banner[data-realtime=ok]", {
      state: "attached",
      timeout: 15_000,
    });
    await page.waitForSelector("#connection[data-state=live]", { timeout: 15_000 });
    await page.waitForSelector(`#order-${placed.id}[data-status=filled]`, { timeout: 10_000 });
    assert.equal(await page.isVisible("#realtime-banner"), false);
    const realtime = await page.evaluate<string[]>("window.realtime");
    assert.ok(realtime.includes("degraded"), realtime.join(" → "));
    await page.screenshot({ path: await artifactPath("resilience-feed-back") });
  } finally {
    await browser.close();
    await admin.end();
    await server.stop();
    await nats?.kill();
    await dropSchema(schema);
  }
}, NO_BROWSER || NO_POSTGRES || (TEST_BUS_URL !== null && NO_NATS));

t("a gap the server cannot fill (reset) reloads the list, not stale rows", async () => {
  const fx = await pageWithOrder("una");
  const { dir, kvPath, port, browser, page, placed } = fx;
  let server = fx.server;
  try {
    // While the server is down the order fills, and retention prunes those events before the
    // page could fetch them: it can only be told `reset`, not caught up.
    await server.stop();
    const store = await openKvStore(kvPath);
    await store.applyReport(ExecutionReport.parse(report(placed.id, "r1", "new")), new Date());
    await store.applyReport(
      ExecutionReport.parse(report(placed.id, "r2", "fill", { last_qty: "5", last_price: "10" })),
      new Date(),
    );
    // And another order is placed.
    await store.placeOrder("una", OrderRequest.parse(order), new Date());
    // Retention passes over all of it (a cutoff after everything): only the latest event stays.
    assert.ok(await store.pruneEvents(new Date(Date.now() + 3_600_000)) >= 3);
    await store.close();

    server = await startServer({ KV_PATH: kvPath, PORT: port });
    // The list is reloaded: the row shows the order as it is now, not as it was.
    await page.waitForSelector(`#order-${placed.id}[data-status=filled]`, { timeout: 15_000 });
    assert.equal(await page.locator(ROW).count(), 2);
    await page.waitForSelector("#connection[data-state=live]");
  } finally {
    await browser.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

t("the page script arriving after the stream opens still shows the page live", async () => {
  // htmx starts the stream as soon as it has run; on a cold cache (a new phone, a CI browser)
  // the indicator's script could arrive after the stream had opened, and the indicator missed
  // "connected" and said "connecting…" forever. Hold connection.js back until the stream is open,
  // or (deferred scripts run in document order, and it comes first) until every other script of
  // the page has arrived: it arrives last either way.
  const server = await startServer();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await signIn(page, server.url, "ugo");
    let othersArrived!: () => void;
    const arrived = new Promise<void>((resolve) => othersArrived = resolve);
    const others = ["app.js", "phone.js", "push.js", "vendor/htmx.js", "vendor/hx-sse.js"];
    const seen = new Set<string>();
    page.on("response", (r) => {
      const path = new URL(r.url()).pathname;
      if (path === "/stream") othersArrived();
      const name = path.replace(/^\/static\//, "");
      if (others.includes(name)) seen.add(name);
      if (seen.size === others.length) othersArrived();
    });
    await page.route("**/static/connection.js*", async (route) => {
      await arrived;
      await route.continue();
    });
    await page.reload();
    await page.waitForSelector("#connection[data-state=live]", { timeout: 10_000 });
  } finally {
    await browser.close();
    await server.stop();
  }
});

t(
  "at the server's stream cap the page says so, polls, and goes live once there is room",
  async () => {
    const server = await startServer({ MAX_STREAMS: "1" });
    const browser = await launch();
    // Someone else holds the instance's one stream.
    const holder = await login(server.url, "holder");
    const held = await SseClient.open(`${server.url}/api/v1/stream`, {
      authorization: `Bearer ${holder.token}`,
    });
    try {
      assert.equal(held.status, 200);
      const page = await browser.newPage();
      await page.goto(`${server.url}/login`);
      await page.fill("input[name=username]", "uma");
      await page.click("button[type=submit]");
      await page.waitForURL(`${server.url}/orders`);
      await page.evaluate(RECORD_STATES);
      // Its first connect is refused (503): it says so and keeps trying, polling meanwhile.
      await page.waitForSelector("#connection[data-state=polling]", { timeout: 20_000 });
      await page.screenshot({ path: await artifactPath("resilience-stream-cap") });
      const { token } = await login(server.url, "uma");
      const { json: placed } = await api(server.url, token, "POST", "/api/v1/orders", order);
      await page.waitForSelector(`#order-${placed.id}`, { timeout: 15_000 });

      // Room again: live by itself within the 10 s backoff ceiling, and events arrive live.
      held.close();
      await page.waitForSelector("#connection[data-state=live]", { timeout: 20_000 });
      await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
        report(placed.id, "c1", "new"),
        report(placed.id, "c2", "fill", { last_qty: "5", last_price: "187.41" }),
      ]);
      await page.waitForSelector(`#order-${placed.id}[data-status=filled]`, { timeout: 10_000 });
      assert.equal(await page.locator(ROW).count(), 1, "one row, not a duplicate");
      const states = await page.evaluate<string[]>("window.states");
      assert.ok(states.includes("polling") && states.at(-1) === "live", states.join(" → "));
    } finally {
      held.close();
      await browser.close();
      await server.stop();
    }
  },
);
