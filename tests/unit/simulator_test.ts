/** The built-in venue on a real (in-memory) store, at SIM_SPEED 0.02: behaviour per CONTRACT.md. */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { dec } from "../../orders/decimal.ts";
import { type Order, OrderRequest } from "../../orders/model.ts";
import { openKvStore } from "../../store/kv.ts";
import type { Store } from "../../store/store.ts";
import { startSimulator } from "../../venue/simulator.ts";
import { eventually } from "../helpers.ts";

function t(name: string, fn: (store: Store, user: string) => Promise<void>) {
  Deno.test({
    name: `simulator: ${name}`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const store = await openKvStore(":memory:");
      const venue = startSimulator({ store, speed: 0.02, log: silentLogger });
      try {
        await fn(store, "sim-user");
      } finally {
        await venue.stop();
        await store.close();
      }
    },
  });
}

async function place(store: Store, user: string, fields: Record<string, unknown>) {
  return (await store.placeOrder(
    user,
    OrderRequest.parse({ asset_class: "stock", side: "buy", ...fields }),
    new Date(),
  )).order;
}

function settled(store: Store, user: string, id: string, status: string): Promise<Order> {
  return eventually(async () => {
    const o = await store.getOrder(user, id);
    return o?.status === status ? o : undefined;
  });
}

t(
  "a stock market order: new, two to four partial fills, then a fill of exactly the quantity",
  async (store, user) => {
    const order = await place(store, user, { symbol: "AAPL", qty: "10" });
    const filled = await settled(store, user, order.id, "filled");
    assert.equal(filled.filled_qty, "10");
    const events = await store.orderEvents(user, order.id);
    const types = events.map((e) => e.type);
    assert.equal(types[1], "new");
    const partials = types.filter((x) => x === "partial_fill").length;
    assert.ok(partials >= 2 && partials <= 4, types.join(","));
    assert.equal(types[types.length - 1], "fill");
    // The average is exact: sum(qty × price) / qty, recomputed here with decimals.
    let notional = dec("0");
    for (const e of events) {
      if (e.execution) {
        notional = notional.plus(dec(e.execution.qty).mul(dec(e.execution.price)));
      }
    }
    assert.ok(dec(filled.filled_avg_price!).minus(notional.div(10)).abs().lt("0.0000000001"));
  },
);

t(
  "unknown symbols and oversized orders are rejected with the contract's reasons",
  async (store, user) => {
    const unknown = await place(store, user, { symbol: "ZZZZ", qty: "1" });
    const big = await place(store, user, { symbol: "MSFT", qty: "2000000" });
    const rich = await place(store, user, {
      symbol: "SPY",
      asset_class: "etf",
      notional: "20000000.00",
    });
    assert.equal(
      (await settled(store, user, unknown.id, "rejected")).reject_reason,
      "unknown symbol",
    );
    assert.equal(
      (await settled(store, user, big.id, "rejected")).reject_reason,
      "insufficient buying power",
    );
    assert.equal(
      (await settled(store, user, rich.id, "rejected")).reject_reason,
      "insufficient buying power",
    );
  },
);

t("a buy limit far below the market rests as new until canceled", async (store, user) => {
  const order = await place(store, user, {
    symbol: "TSLA",
    type: "limit",
    limit_price: "1.00",
    qty: "5",
  });
  await settled(store, user, order.id, "new");
  await new Promise((r) => setTimeout(r, 100)); // several price checks at this speed
  assert.equal((await store.getOrder(user, order.id))?.status, "new");
  await store.requestCancel(user, order.id, new Date());
  const canceled = await settled(store, user, order.id, "canceled");
  assert.equal(canceled.filled_qty, "0");
});

t(
  "a marketable limit fills; an IOC limit that cannot fill now is canceled with nothing filled",
  async (store, user) => {
    const marketable = await place(store, user, {
      symbol: "NVDA",
      type: "limit",
      limit_price: "500",
      qty: "2",
    });
    assert.equal((await settled(store, user, marketable.id, "filled")).filled_qty, "2");
    const ioc = await place(store, user, {
      symbol: "NVDA",
      type: "limit",
      limit_price: "1",
      qty: "2",
      time_in_force: "ioc",
    });
    assert.equal((await settled(store, user, ioc.id, "canceled")).filled_qty, "0");
    const fok = await place(store, user, {
      symbol: "NVDA",
      type: "limit",
      limit_price: "1",
      qty: "2",
      time_in_force: "fok",
    });
    assert.equal((await settled(store, user, fok.id, "canceled")).filled_qty, "0");
  },
);

t("crypto fills fractional quantities around the clock", async (store, user) => {
  const order = await place(store, user, {
    symbol: "BTC-USD",
    asset_class: "crypto",
    qty: "0.00012345",
  });
  const filled = await settled(store, user, order.id, "filled");
  assert.equal(filled.filled_qty, "0.00012345");
  assert.equal(filled.time_in_force, "gtc");
});

t(
  "a mutual fund dollar order fills once at the cut-off at the NAV, within its notional",
  async (store, user) => {
    const order = await place(store, user, {
      symbol: "VFIAX",
      asset_class: "mutual_fund",
      notional: "250.00",
    });
    const filled = await settled(store, user, order.id, "filled");
    const fills = (await store.orderEvents(user, order.id)).filter((e) => e.execution);
    assert.equal(fills.length, 1);
    assert.equal(fills[0].execution!.price, "512.34");
    assert.ok(dec(filled.filled_notional).lte("250.00"));
    assert.equal(filled.filled_qty, "0.487957215"); // 250 / 512.34 = 0.4879572159…, rounded down
  },
);

t("the simulated close expires open day orders, not gtc ones", async (store, user) => {
  const s2 = await openKvStore(":memory:");
  const venue = startSimulator({ store: s2, speed: 0.02, log: silentLogger });
  try {
    const day = await place(s2, user, {
      symbol: "QQQ",
      asset_class: "etf",
      type: "limit",
      limit_price: "1",
      qty: "1",
    });
    const gtc = await place(s2, user, {
      symbol: "QQQ",
      asset_class: "etf",
      type: "limit",
      limit_price: "1",
      qty: "1",
      time_in_force: "gtc",
    });
    await settled(s2, user, day.id, "new");
    await settled(s2, user, gtc.id, "new");
    await venue.closeMarket();
    assert.equal((await settled(s2, user, day.id, "expired")).status, "expired");
    assert.equal((await s2.getOrder(user, gtc.id))?.status, "new");
  } finally {
    await venue.stop();
    await s2.close();
  }
  assert.ok(store);
});
