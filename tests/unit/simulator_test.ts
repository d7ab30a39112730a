/**
 * The built-in venue on a real (in-memory) KV store at SIM_SPEED 0.02: behaviour per CONTRACT.md.
 * Orders are placed through the store, so the simulator must pick them up from the change feed.
 * Outcomes are awaited by polling, never by timing assertions: CI machines are slow.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { dec } from "../../orders/decimal.ts";
import { type Order, OrderRequest } from "../../orders/model.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { eventually } from "../helpers.ts";
import type { Store } from "../../store/store.ts";
import { type Simulator, startSimulator } from "../../venue/simulator.ts";

const SPEED = 0.02;
const USER = "sim-user";

/** Polls every 20 ms until `check` answers something, for at most 5 s. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits until the order is in `status` and answers it. */
function settled(store: Store, id: string, status: string): Promise<Order> {
  return waitFor(`order ${id} to be ${status}`, async () => {
    const o = await store.getOrder(USER, id);
    return o?.status === status ? o : undefined;
  });
}

async function place(store: Store, fields: Record<string, unknown>): Promise<Order> {
  return (await store.placeOrder(
    USER,
    OrderRequest.parse({ asset_class: "stock", side: "buy", ...fields }),
    new Date(),
  )).order;
}

/** A test with its own store and simulator, both closed afterwards whatever happens. */
function t(name: string, fn: (store: Store, venue: Simulator) => Promise<void>) {
  Deno.test({
    name: `simulator: ${name}`,
    async fn() {
      const store = await openKvStore(":memory:");
      const venue = startSimulator({ store, speed: SPEED, log: silentLogger });
      try {
        await fn(store, venue);
      } finally {
        await venue.stop();
        await store.close();
      }
    },
  });
}

t("a stock market order: new, 2-4 partial fills, then a fill of the whole qty", async (store) => {
  const order = await place(store, { symbol: "AAPL", qty: "10" });
  assert.equal(order.status, "pending_new");
  const filled = await settled(store, order.id, "filled");
  assert.equal(filled.filled_qty, "10");
  const events = await store.orderEvents(USER, order.id);
  const types = events.map((e) => e.type);
  assert.equal(types[0], "pending_new");
  assert.equal(types[1], "new");
  const partials = types.filter((x) => x === "partial_fill").length;
  assert.ok(partials >= 2 && partials <= 4, types.join(","));
  assert.equal(types[types.length - 1], "fill");
  // Every piece is positive, prices have exactly two decimals, and the average is exact.
  let qty = dec("0"), notional = dec("0");
  for (const e of events) {
    if (!e.execution) continue;
    assert.ok(dec(e.execution.qty).gt(0));
    assert.match(e.execution.price, /^\d+\.\d{2}$/);
    qty = qty.plus(dec(e.execution.qty));
    notional = notional.plus(dec(e.execution.qty).mul(dec(e.execution.price)));
  }
  assert.ok(qty.eq(10));
  assert.ok(dec(filled.filled_notional).eq(notional));
  assert.ok(dec(filled.filled_avg_price!).minus(notional.div(10)).abs().lt("0.0000000001"));
});

t("a fractional stock quantity fills exactly, a tiny one in a single fill", async (store) => {
  const frac = await place(store, { symbol: "MSFT", qty: "3.333333333" });
  const tiny = await place(store, { symbol: "MSFT", qty: "0.000000001" });
  assert.equal((await settled(store, frac.id, "filled")).filled_qty, "3.333333333");
  assert.equal((await settled(store, tiny.id, "filled")).filled_qty, "0.000000001");
  const fills = (await store.orderEvents(USER, tiny.id)).filter((e) => e.execution);
  assert.equal(fills.length, 1);
});

t("an unknown symbol is rejected with reason 'unknown symbol'", async (store) => {
  const order = await place(store, { symbol: "ZZZZ", qty: "1" });
  assert.equal((await settled(store, order.id, "rejected")).reject_reason, "unknown symbol");
});

t("qty 2000000 and a 20M notional are rejected for buying power", async (store) => {
  const big = await place(store, { symbol: "MSFT", qty: "2000000" });
  const rich = await place(store, { symbol: "SPY", asset_class: "etf", notional: "20000000.00" });
  const reason = "insufficient buying power";
  assert.equal((await settled(store, big.id, "rejected")).reject_reason, reason);
  assert.equal((await settled(store, rich.id, "rejected")).reject_reason, reason);
});

t("an asset class that does not match the symbol is rejected", async (store) => {
  const order = await place(store, { symbol: "AAPL", asset_class: "crypto", qty: "1" });
  assert.equal(
    (await settled(store, order.id, "rejected")).reject_reason,
    "asset class does not match symbol",
  );
});

t("a buy limit at 1.00 rests as new until canceled", async (store, venue) => {
  const order = await place(store, {
    symbol: "TSLA",
    type: "limit",
    limit_price: "1.00",
    qty: "5",
  });
  await settled(store, order.id, "new");
  const checked = venue.restingChecks();
  await waitFor(
    "three more resting checks",
    () => Promise.resolve(venue.restingChecks() >= checked + 3 || undefined),
  );
  assert.equal((await store.getOrder(USER, order.id))?.status, "new");
  await store.requestCancel(USER, order.id, new Date());
  const canceled = await settled(store, order.id, "canceled");
  assert.equal(canceled.filled_qty, "0");
  const types = (await store.orderEvents(USER, order.id)).map((e) => e.type);
  assert.deepEqual(types, ["pending_new", "new", "pending_cancel", "canceled"]);
});

t("a marketable limit fills; IOC and FOK limits that cannot fill are canceled", async (store) => {
  const marketable = await place(store, {
    symbol: "NVDA",
    type: "limit",
    limit_price: "500",
    qty: "2",
  });
  const filled = await settled(store, marketable.id, "filled");
  assert.equal(filled.filled_qty, "2");
  assert.ok(dec(filled.filled_avg_price!).lte(500));
  for (const tif of ["ioc", "fok"]) {
    const o = await place(store, {
      symbol: "NVDA",
      type: "limit",
      limit_price: "1",
      qty: "2",
      time_in_force: tif,
    });
    assert.equal((await settled(store, o.id, "canceled")).filled_qty, "0");
  }
});

t("a replace of a resting limit confirms the new terms on a replacement order", async (store) => {
  const order = await place(store, { symbol: "AAPL", type: "limit", limit_price: "1", qty: "5" });
  await settled(store, order.id, "new");
  await store.requestReplace(USER, order.id, { qty: "7", limit_price: "2" }, new Date());
  const old = await settled(store, order.id, "replaced");
  assert.ok(old.replaced_by);
  const replacement = await settled(store, old.replaced_by!, "new");
  assert.equal(replacement.qty, "7");
  assert.equal(replacement.limit_price, "2");
});

t(
  "a replace asked right after placing (maybe before the ack) ends in a replacement",
  async (store) => {
    const order = await place(store, { symbol: "AAPL", type: "limit", limit_price: "1", qty: "5" });
    // No wait for `new`: the venue acknowledges while the replace is pending, then confirms it.
    await store.requestReplace(USER, order.id, { qty: "3" }, new Date());
    const old = await settled(store, order.id, "replaced");
    const replacement = await settled(store, old.replaced_by!, "new");
    assert.equal(replacement.qty, "3");
  },
);

t("crypto fills a fractional qty of 0.00012345", async (store) => {
  const order = await place(store, {
    symbol: "BTC-USD",
    asset_class: "crypto",
    qty: "0.00012345",
  });
  const filled = await settled(store, order.id, "filled");
  assert.equal(filled.filled_qty, "0.00012345");
  assert.equal(filled.time_in_force, "gtc");
  const fills = (await store.orderEvents(USER, order.id)).filter((e) => e.execution);
  assert.ok(fills.length >= 1 && fills.length <= 2);
});

t(
  "a stock dollar order: 2-4 partial fills and a fill, never more than its notional",
  async (store) => {
    const order = await place(store, { symbol: "AAPL", notional: "1000.00" });
    const filled = await settled(store, order.id, "filled");
    assert.ok(dec(filled.filled_notional).lte("1000.00"));
    assert.ok(dec(filled.filled_qty).gt(0));
    const types = (await store.orderEvents(USER, order.id)).map((e) => e.type);
    const partials = types.filter((t) => t === "partial_fill").length;
    assert.ok(partials >= 2 && partials <= 4, types.join(","));
    assert.equal(types.at(-1), "fill");
  },
);

t("exactly 1,000,000 shares is within the limit, however dear", async (store) => {
  // CONTRACT rejects qty above 1,000,000 or notional above 10,000,000, nothing else.
  const order = await place(store, { symbol: "AAPL", qty: "1000000" });
  await eventually(async () =>
    (await store.orderEvents(USER, order.id)).some((e) => e.type === "new")
  );
  assert.notEqual((await store.getOrder(USER, order.id))?.status, "rejected");
});

t("a mutual fund notional of 250.00 fills once at the NAV within it", async (store) => {
  const order = await place(store, {
    symbol: "VFIAX",
    asset_class: "mutual_fund",
    notional: "250.00",
  });
  const filled = await settled(store, order.id, "filled");
  const fills = (await store.orderEvents(USER, order.id)).filter((e) => e.execution);
  assert.equal(fills.length, 1);
  assert.equal(fills[0].execution!.price, "512.34");
  assert.ok(dec(filled.filled_qty).mul(dec(fills[0].execution!.price)).lte("250.00"));
  assert.equal(filled.filled_qty, "0.487957215"); // 250 / 512.34 = 0.4879572159…, rounded down
});

t("closeMarket expires resting day orders, not gtc ones", async (store, venue) => {
  const limit = { symbol: "QQQ", asset_class: "etf", type: "limit", limit_price: "1", qty: "1" };
  const day = await place(store, limit);
  const gtc = await place(store, { ...limit, time_in_force: "gtc" });
  await settled(store, day.id, "new");
  await settled(store, gtc.id, "new");
  await venue.closeMarket();
  const expired = await settled(store, day.id, "expired");
  const events = await store.orderEvents(USER, expired.id);
  assert.equal(events[events.length - 1].reason, "market closed");
  assert.equal((await store.getOrder(USER, gtc.id))?.status, "new");
});

t("a restarted venue resumes orders a previous run left working", async (store, venue) => {
  await venue.stop();
  // A stopped venue takes on no work: its scheduler refuses it, whatever it hears.
  const order = await place(store, { symbol: "SPY", asset_class: "etf", qty: "4" });
  assert.equal((await store.getOrder(USER, order.id))?.status, "pending_new");
  const again = startSimulator({ store, speed: SPEED, log: silentLogger });
  try {
    assert.equal((await settled(store, order.id, "filled")).filled_qty, "4");
  } finally {
    await again.stop();
  }
});

Deno.test({
  name: "simulator: stop() leaves no timers running",
  async fn() {
    const store = await openKvStore(":memory:");
    // Count the simulator's live timers by wrapping the timer functions for this test.
    const live = new Set<unknown>();
    const realSet = globalThis.setTimeout, realClear = globalThis.clearTimeout;
    const spySet = ((fn: () => void, ms?: number) => {
      const id: unknown = realSet(() => {
        live.delete(id);
        fn();
      }, ms);
      live.add(id);
      return id;
    }) as unknown as typeof setTimeout;
    const spyClear = ((id?: number) => {
      if (id !== undefined) live.delete(id);
      realClear(id);
    }) as unknown as typeof clearTimeout;
    globalThis.setTimeout = spySet;
    globalThis.clearTimeout = spyClear;
    try {
      const venue = startSimulator({ store, speed: SPEED, log: silentLogger });
      const market = await place(store, { symbol: "AAPL", qty: "100" });
      const resting = await place(store, {
        symbol: "AAPL",
        type: "limit",
        limit_price: "1",
        qty: "1",
      });
      await place(store, { symbol: "FXAIX", asset_class: "mutual_fund", qty: "3" });
      await settled(store, resting.id, "new");
      await waitFor("the market order to be acknowledged", async () => {
        const o = await store.getOrder(USER, market.id);
        return o && o.status !== "pending_new" ? o : undefined;
      });
      assert.ok(live.size > 0, "the venue should have work scheduled before stop()");
      await venue.stop();
      assert.equal(live.size, 0, "timers still pending after stop()");
      // Nothing moves any more, not even new orders: no timer is set for them.
      const before = await store.getOrder(USER, market.id);
      const later = await place(store, { symbol: "AAPL", qty: "1" });
      assert.equal(live.size, 0, "a stopped venue set a timer for a new order");
      assert.deepEqual(await store.getOrder(USER, market.id), before);
      assert.equal((await store.getOrder(USER, later.id))?.status, "pending_new");
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
      await store.close();
    }
  },
});
