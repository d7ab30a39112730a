/**
 * The built-in venue (SIMULATOR=on): it plays an execution platform for orders placed through the
 * app. It hears orders on the store's change feed and reports through `store.applyReport` — the
 * same path as POST /api/v1/executions — so a simulated fill and a real one are indistinguishable
 * downstream. Behaviour per asset class follows CONTRACT.md ("The built-in venue"); every delay is
 * multiplied by `speed` (SIM_SPEED).
 *
 * Quantities and prices are decimals end to end (orders/decimal.ts): a JS number never touches
 * one, so fills add up to the order's quantity exactly and dollar orders never exceed their amount.
 */
import type { Logger } from "../log.ts";
import { canonical, type Dec, dec, floorTo } from "../orders/decimal.ts";
import { AppError } from "../orders/errors.ts";
import {
  type AssetClass,
  type EventType,
  ExecutionReport,
  isFinal,
  type Order,
  type OrderEvent,
  QTY_PLACES,
} from "../orders/model.ts";
import type { Store } from "../store/store.ts";

/** Reference prices (and mutual fund NAVs) of the symbols the venue trades. */
export const SYMBOLS: Readonly<Record<string, { assetClass: AssetClass; price: string }>> = {
  AAPL: { assetClass: "stock", price: "187.50" },
  MSFT: { assetClass: "stock", price: "415.20" },
  TSLA: { assetClass: "stock", price: "242.10" },
  NVDA: { assetClass: "stock", price: "121.40" },
  SPY: { assetClass: "etf", price: "560.30" },
  VOO: { assetClass: "etf", price: "515.60" },
  QQQ: { assetClass: "etf", price: "480.25" },
  VFIAX: { assetClass: "mutual_fund", price: "512.34" },
  FXAIX: { assetClass: "mutual_fund", price: "198.76" },
  "BTC-USD": { assetClass: "crypto", price: "67250.00" },
  "ETH-USD": { assetClass: "crypto", price: "3450.50" },
  "SOL-USD": { assetClass: "crypto", price: "152.30" },
};

/** Reject reasons, as CONTRACT.md words them. */
export const REASONS = {
  unknownSymbol: "unknown symbol",
  buyingPower: "insufficient buying power",
  assetClass: "asset class does not match symbol",
  marketClosed: "market closed",
} as const;

const MAX_QTY = dec("1000000");
const MAX_NOTIONAL = dec("10000000");
/** One step of the price walk is at most this many basis points of the reference. */
const STEP_BP = 10;
/**
 * The walk never strays further than this from the reference (CONTRACT allows ±2%; staying inside
 * 1.5% leaves room for rounding), so a buy limit at 1.00 can never fill.
 */
const BAND_BP = 150;
/** How many orders a restart picks up (and the close expires) in one go. */
const WORKING_LIMIT = 10_000;

/** A running simulator. */
export interface Simulator {
  /** Stops working orders: unsubscribes, clears every timer and waits for reports in flight. */
  stop(): Promise<void>;
  /** Test clock: drives the market to its close, expiring every working `day` order now. */
  closeMarket(): Promise<void>;
}

/** An order waiting for the price to reach its limit or stop. */
interface Resting {
  order: Order;
  /** A stop_limit whose stop was reached now behaves as a limit order. */
  triggered: boolean;
  /** Whether it has been checked once (IOC/FOK get exactly one chance). */
  checked: boolean;
}

/**
 * Starts the venue on `store`. `speed` scales every delay (1 = CONTRACT timings, 0.02 in tests);
 * `random` (default Math.random) drives prices, delays and fill counts so tests can pin them.
 */
export function startSimulator(opts: {
  store: Store;
  speed: number;
  log: Logger;
  random?: () => number;
}): Simulator {
  const { store, log } = opts;
  const random = opts.random ?? Math.random;
  const speed = opts.speed;
  /** Every pending timer, so stop() can clear them all. */
  const timers = new Set<ReturnType<typeof setTimeout>>();
  /** Reports and timer callbacks still running; stop() waits for them. */
  const inFlight = new Set<Promise<unknown>>();
  /** The tail of each order's report queue: one order's reports reach the store in order. */
  const queues = new Map<string, Promise<unknown>>();
  /** Orders whose acknowledgement is under way, so a resumed order is not accepted twice. */
  const accepting = new Set<string>();
  const resting = new Map<string, Resting>();
  /** The current simulated price of each symbol (absent: still at its reference). */
  const prices = new Map<string, Dec>();
  let tickTimer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  /** A delay in ms: `base` plus up to `spread` at random, scaled by speed. */
  const ms = (base: number, spread = 0) => Math.max(1, (base + random() * spread) * speed);

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    p.finally(() => inFlight.delete(p)).catch(() => {});
    return p;
  };

  /** Runs `fn` after `delay` ms unless stopped first; async work it starts is tracked. */
  const later = (delay: number, fn: () => void | Promise<unknown>) => {
    if (stopped) return null;
    const t = setTimeout(() => {
      timers.delete(t);
      if (stopped) return;
      const result = fn();
      if (result instanceof Promise) {
        track(result.catch((err) => log.warn("venue task failed", { err: String(err) })));
      }
    }, delay);
    timers.add(t);
    return t;
  };

  /**
   * The next simulated price of a symbol: a bounded random walk around its reference, rounded to
   * cents. Basis points are integers, so the arithmetic stays exact.
   */
  const priceOf = (symbol: string): Dec => {
    const ref = dec(SYMBOLS[symbol].price);
    const current = prices.get(symbol) ?? ref;
    const bp = Math.round((random() * 2 - 1) * STEP_BP);
    let next = current.plus(ref.mul(bp).div(10_000));
    const lo = ref.mul(10_000 - BAND_BP).div(10_000);
    const hi = ref.mul(10_000 + BAND_BP).div(10_000);
    if (next.lt(lo)) next = lo;
    if (next.gt(hi)) next = hi;
    next = next.toDecimalPlaces(2);
    prices.set(symbol, next);
    return next;
  };

  /** Mutual funds trade once a day at their NAV: the reference price, never the walk. */
  const nav = (symbol: string): Dec => dec(SYMBOLS[symbol].price);

  /** Sends one report now; answers the order as it is after it, or null if the store refused. */
  const send = async (
    orderId: string,
    type: EventType,
    fields: Record<string, string>,
  ): Promise<Order | null> => {
    try {
      const now = new Date();
      const result = await store.applyReport(
        ExecutionReport.parse({
          order_id: orderId,
          exec_id: `sim-${crypto.randomUUID()}`,
          type,
          at: now.toISOString(),
          ...fields,
        }),
        now,
      );
      // A replace answers the old order; the report's own order is what the caller asked about.
      return result.events.find((e) => e.order.id === orderId)?.order ?? result.order;
    } catch (err) {
      if (
        err instanceof AppError && (err.code === "illegal_transition" || err.code === "not_found")
      ) {
        // A race with the user (a cancel that won, a fill after a cancel) is normal: the store
        // refused the report and nothing changed.
        log.debug("venue report refused", { order_id: orderId, type, reason: err.message });
      } else {
        log.warn("venue report failed", { order_id: orderId, type, err: String(err) });
      }
      return null;
    }
  };

  /** Queues a report behind the order's earlier ones, so e.g. a fill never overtakes a partial. */
  const report = (
    orderId: string,
    type: EventType,
    fields: Record<string, string> = {},
  ): Promise<Order | null> => {
    if (stopped) return Promise.resolve(null);
    const previous = queues.get(orderId) ?? Promise.resolve();
    const p = previous.then(() => send(orderId, type, fields));
    queues.set(orderId, p);
    track(p).finally(() => {
      if (queues.get(orderId) === p) queues.delete(orderId);
    });
    return p;
  };

  const fillFields = (qty: Dec, price: Dec) => ({
    last_qty: canonical(qty),
    last_price: price.toFixed(2),
  });

  /** Why the venue refuses an order, or null. */
  const refusal = (o: Order): string | null => {
    const known = SYMBOLS[o.symbol];
    if (!known) return REASONS.unknownSymbol;
    if (o.qty !== null && dec(o.qty).gt(MAX_QTY)) return REASONS.buyingPower;
    // Exactly CONTRACT's two limits: an order of 1,000,000 shares is worked, however dear.
    if (o.notional !== null && dec(o.notional).gt(MAX_NOTIONAL)) return REASONS.buyingPower;
    if (known.assetClass !== o.asset_class) return REASONS.assetClass;
    return null;
  };

  /**
   * Splits a quantity into `parts` exact pieces, each > 0, that add up to it; a quantity too small
   * to split (e.g. 0.000000001) is one piece.
   */
  const split = (total: Dec, parts: number): Dec[] => {
    const piece = floorTo(total.div(parts), QTY_PLACES);
    if (parts <= 1 || piece.isZero()) return [total];
    const out = Array.from({ length: parts - 1 }, () => piece);
    out.push(total.minus(piece.mul(parts - 1)));
    return out;
  };

  /**
   * Reports `pieces` one after another: each waits for the previous one to be applied and then
   * `gap()` ms more, so fills of one order are always at least a gap apart. Stops early when the
   * order has ended (canceled, replaced, expired) or the store refused a piece.
   */
  const fillInPieces = (
    orderId: string,
    pieces: Dec[],
    price: () => Dec,
    firstDelay: number,
    gap: () => number,
  ) => {
    const next = (i: number, delay: number) =>
      later(delay, async () => {
        const last = i === pieces.length - 1;
        const after = await report(
          orderId,
          last ? "fill" : "partial_fill",
          fillFields(pieces[i], price()),
        );
        if (!last && after && !isFinal(after.status)) next(i + 1, gap());
      });
    next(0, firstDelay);
  };

  /**
   * Fills what is left of a market order (or a triggered one) over `parts` pieces. Dollar orders
   * fill at one price, so pieces that add up to floor(amount / price) never spend more than it.
   */
  const fillRemaining = (
    order: Order,
    parts: number,
    firstDelay: number,
    gap: () => number,
    price: () => Dec,
  ) => {
    if (order.notional !== null) {
      const left = dec(order.notional).minus(dec(order.filled_notional));
      const p = price();
      let total = floorTo(left.div(p), QTY_PLACES);
      // div rounds at 60 digits; make sure that rounding never tipped the amount over.
      if (total.mul(p).gt(left)) total = total.minus(dec("0.000000001"));
      if (total.lte(0)) {
        later(
          firstDelay,
          () => report(order.id, "canceled", { reason: "amount below the minimum" }),
        );
        return;
      }
      fillInPieces(order.id, split(total, parts), () => p, firstDelay, gap);
      return;
    }
    const remaining = dec(order.qty!).minus(dec(order.filled_qty));
    if (remaining.lte(0)) return;
    fillInPieces(order.id, split(remaining, parts), price, firstDelay, gap);
  };

  /** Works an order the venue has accepted (or a previous run left working, or a replacement). */
  const work = (order: Order) => {
    switch (order.asset_class) {
      case "mutual_fund": {
        // One fill of the whole order at the NAV, at the next cut-off: 5 s after placement.
        const cutoff = Date.parse(order.created_at) + 5_000 * speed;
        const delay = Math.max(1, cutoff - Date.now());
        fillRemaining(order, 1, delay, () => 0, () => nav(order.symbol));
        return;
      }
      case "crypto":
        if (order.type !== "market") return rest(order);
        // One or two fills, all within about 1 s of placement.
        fillRemaining(
          order,
          1 + Math.floor(random() * 2),
          ms(100, 200),
          () => ms(200, 200),
          () => priceOf(order.symbol),
        );
        return;
      default:
        if (order.type !== "market") return rest(order);
        // Stocks and ETFs, by quantity or by amount: 2-4 partial fills and a fill, at least
        // 200 ms apart, done within about 3 s.
        fillRemaining(
          order,
          3 + Math.floor(random() * 3),
          ms(100, 200),
          () => ms(250, 250),
          () => priceOf(order.symbol),
        );
    }
  };

  /** Acknowledges (or rejects) a new order shortly after it was placed, then works it. */
  const accept = (order: Order) => {
    if (accepting.has(order.id)) return;
    accepting.add(order.id);
    const why = refusal(order);
    later(ms(50, 100), async () => {
      try {
        if (why) {
          await report(order.id, "rejected", { reason: why });
          return;
        }
        const after = await report(order.id, "new");
        // A cancel that arrived before the acknowledgement is being handled: do not fill.
        if (after && after.status === "new") work(after);
      } finally {
        accepting.delete(order.id);
      }
    });
    // If stopped before the timer ran, nothing is under way any more.
    if (stopped) accepting.delete(order.id);
  };

  // --- resting orders: one timer checks them all -----------------------------------------------

  const rest = (order: Order) => {
    resting.set(order.id, { order, triggered: false, checked: false });
    checkResting(order.id);
    ensureTicking();
  };

  /** Whether the market price reaches the order now: its stop triggers, then its limit crosses. */
  const crosses = (r: Resting, price: Dec): boolean => {
    const o = r.order;
    const buy = o.side === "buy";
    if (!r.triggered && o.stop_price !== null && (o.type === "stop" || o.type === "stop_limit")) {
      const stop = dec(o.stop_price);
      // A buy stop triggers at or above its price, a sell stop at or below.
      if (buy ? price.lt(stop) : price.gt(stop)) return false;
      r.triggered = true;
    }
    if (o.limit_price === null) return true; // a triggered stop is a market order
    const limit = dec(o.limit_price);
    return buy ? price.lte(limit) : price.gte(limit);
  };

  const checkResting = (only?: string) => {
    for (const [id, r] of resting) {
      if (only !== undefined && id !== only) continue;
      const o = r.order;
      if (isFinal(o.status)) {
        resting.delete(id);
        continue;
      }
      const price = priceOf(o.symbol);
      const firstLook = !r.checked;
      r.checked = true;
      if (crosses(r, price)) {
        resting.delete(id);
        const remaining = dec(o.qty!).minus(dec(o.filled_qty));
        if (remaining.gt(0)) report(id, "fill", fillFields(remaining, price));
      } else if (firstLook && (o.time_in_force === "ioc" || o.time_in_force === "fok")) {
        // Immediate-or-cancel and fill-or-kill get one look at the market, no resting.
        resting.delete(id);
        later(ms(20), () => report(id, "canceled", { reason: "not filled immediately" }));
      }
    }
  };

  /** Keeps the single resting-order timer running while anything rests. */
  const ensureTicking = () => {
    if (tickTimer !== null || resting.size === 0 || stopped) return;
    tickTimer = later(ms(500), () => {
      tickTimer = null;
      checkResting();
      ensureTicking();
    });
  };

  // --- what the venue hears --------------------------------------------------------------------

  const cancelSoon = (userId: string, orderId: string) => {
    // 100-350 ms, leaving room for the write inside CONTRACT's 500 ms.
    later(ms(100, 250), async () => {
      // Already final (a fill, a close or an earlier cancel got there first): nothing to cancel.
      const current = await store.getOrder(userId, orderId);
      if (!current || isFinal(current.status)) return;
      resting.delete(orderId);
      await report(orderId, "canceled", { reason: "canceled by the user" });
    });
  };

  const onEvent = (userId: string, e: OrderEvent) => {
    const o = e.order;
    if (isFinal(o.status)) {
      resting.delete(o.id);
      return;
    }
    switch (e.type) {
      case "pending_new":
        return accept(o);
      case "pending_cancel":
        return cancelSoon(userId, o.id);
      case "pending_replace": {
        const requested = e.requested ?? {};
        const fields: Record<string, string> = {};
        if (requested.qty !== undefined) fields.qty = requested.qty;
        if (requested.limit_price !== undefined) fields.limit_price = requested.limit_price;
        later(ms(120, 60), () => report(o.id, "replaced", fields));
        return;
      }
      case "new":
        // A replacement order starts life as `new`: it is worked on its new terms.
        if (o.replaces !== null) return work(o);
        break;
    }
    // Keep the resting copy current (a pending request, a new limit), keeping its trigger state.
    const r = resting.get(o.id);
    if (r) r.order = o;
  };

  const unsubscribe = store.changes.subscribe({
    events: (batch) => {
      for (const { user_id, event } of batch) {
        try {
          onEvent(user_id, event);
        } catch (err) {
          // The listener runs inside the store's publish: never let the venue break a write.
          log.error("venue could not handle an event", { err: String(err) });
        }
      }
    },
    sessionRevoked() {},
    connected() {},
    disconnected() {},
  });

  // Orders a previous run left working: pick them up where they are.
  track(
    store.workingOrders(WORKING_LIMIT).then((working) => {
      if (stopped) return;
      for (const { user_id, order } of working) {
        switch (order.status) {
          case "pending_new":
            accept(order);
            break;
          case "new":
          case "partially_filled":
            work(order);
            break;
          case "pending_cancel":
            cancelSoon(user_id, order.id);
            break;
          case "pending_replace":
            // What was asked for is in the event log, not the snapshot; the user can ask again.
            report(order.id, "order_replace_rejected", {
              reason: "the venue restarted; try again",
            });
            break;
        }
      }
      if (working.length > 0) log.info("venue resumed working orders", { count: working.length });
    }).catch((err) => log.warn("venue could not resume working orders", { err: String(err) })),
  );

  return {
    async stop() {
      stopped = true;
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      tickTimer = null;
      resting.clear();
      // A report finishing can start another step; report() refuses once stopped, so this ends.
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    async closeMarket() {
      const working = await store.workingOrders(WORKING_LIMIT);
      // Crypto trades around the clock: it has no close, whatever its time in force says.
      const day = working.filter(({ order }) =>
        order.time_in_force === "day" && order.asset_class !== "crypto"
      );
      await Promise.all(day.map(({ order }) => {
        resting.delete(order.id);
        return report(order.id, "expired", { reason: REASONS.marketClosed });
      }));
    },
  };
}
