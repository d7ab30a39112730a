/**
 * The built-in venue (SIMULATOR=on): it plays an execution platform for orders placed through the
 * app. It hears orders on the store's change feed and reports through `store.applyReport` — the
 * same path as POST /api/v1/executions — so a simulated fill and a real one are indistinguishable
 * downstream. Behaviour per asset class follows CONTRACT.md; every delay scales with SIM_SPEED.
 */
import type { Logger } from "../log.ts";
import { canonical, type Dec, dec, divide, floorTo } from "../orders/decimal.ts";
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

const MAX_QTY = dec("1000000");
const MAX_NOTIONAL = dec("10000000");
/** The simulated price wanders at most this many basis points from the reference. */
const WANDER_BP = 20;

/** A running simulator. */
export interface Simulator {
  /** Stops working orders: clears every timer and waits for reports in flight. */
  stop(): Promise<void>;
  /** The test clock: drives the market to its close, expiring working `day` orders. */
  closeMarket(): Promise<void>;
}

/** Starts the venue. `random` makes tests repeatable. */
export function startSimulator(opts: {
  store: Store;
  speed: number;
  log: Logger;
  random?: () => number;
}): Simulator {
  const { store, log } = opts;
  const random = opts.random ?? Math.random;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const inFlight = new Set<Promise<unknown>>();
  /** Orders waiting for the price to cross their limit or stop: id -> latest snapshot. */
  const resting = new Map<string, Order>();
  let stopped = false;

  const ms = (base: number, spread = 0) => Math.max(1, (base + random() * spread) * opts.speed);
  const later = (delay: number, fn: () => void) => {
    if (stopped) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, delay);
    timers.add(t);
  };

  /** The current simulated price: the reference ± a few basis points, 2 decimals, exact. */
  const priceOf = (symbol: string): Dec => {
    const ref = dec(SYMBOLS[symbol].price);
    const bp = Math.round((random() * 2 - 1) * WANDER_BP);
    return ref.mul(10_000 + bp).div(10_000).toDecimalPlaces(2);
  };

  const report = (order: Order, type: EventType, fields: Record<string, string> = {}) => {
    const p = store.applyReport(
      ExecutionReport.parse({
        order_id: order.id,
        exec_id: `sim-${crypto.randomUUID()}`,
        type,
        at: new Date().toISOString(),
        ...fields,
      }),
      new Date(),
    ).catch((err) => {
      // A race with the user (a cancel that won, a fill after a cancel) is normal: the store
      // refused the report and nothing changed.
      if (err instanceof AppError && err.status < 500) {
        log.debug("venue report refused", { order_id: order.id, type, reason: err.message });
      } else log.warn("venue report failed", { order_id: order.id, type, err: String(err) });
    });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
    return p;
  };

  const fillReport = (order: Order, qty: Dec, price: Dec, last: boolean) =>
    report(order, last ? "fill" : "partial_fill", {
      last_qty: canonical(qty),
      last_price: price.toFixed(2),
    });

  /** Why the venue refuses an order, or null. */
  const refusal = (o: Order): string | null => {
    const known = SYMBOLS[o.symbol];
    if (!known) return "unknown symbol";
    if (known.assetClass !== o.asset_class) return "asset class does not match symbol";
    if (o.qty !== null && dec(o.qty).gt(MAX_QTY)) return "insufficient buying power";
    if (o.notional !== null && dec(o.notional).gt(MAX_NOTIONAL)) return "insufficient buying power";
    return null;
  };

  /** Splits the remaining quantity into `parts` exact pieces (fewer if too small to split). */
  const split = (remaining: Dec, parts: number): Dec[] => {
    const piece = floorTo(divide(remaining, dec(String(parts)), QTY_PLACES + 6), QTY_PLACES);
    if (piece.isZero()) return [remaining];
    const out = Array.from({ length: parts - 1 }, () => piece);
    out.push(remaining.minus(piece.mul(parts - 1)));
    return out;
  };

  /** Fills what is left of a working order in pieces, `gap` ms apart from `start`. */
  const fillOver = (order: Order, pieces: number, start: number, gap: () => number) => {
    const cls = order.asset_class;
    if (order.notional !== null) {
      const price = cls === "mutual_fund"
        ? dec(SYMBOLS[order.symbol].price)
        : priceOf(order.symbol);
      // Divide with spare places, then round DOWN: to nearest could overshoot the notional.
      const total = floorTo(divide(dec(order.notional), price, QTY_PLACES + 6), QTY_PLACES);
      if (total.isZero()) {
        later(start, () => report(order, "canceled", { reason: "amount below the minimum" }));
        return;
      }
      // Same price for every piece, so the sum stays within the notional.
      const qtys = cls === "mutual_fund" ? [total] : split(total, pieces);
      let at = start;
      qtys.forEach((q, i) => {
        later(at, () => fillReport(order, q, price, i === qtys.length - 1));
        at += gap();
      });
      return;
    }
    const remaining = dec(order.qty!).minus(dec(order.filled_qty));
    const qtys = split(remaining, pieces);
    let at = start;
    qtys.forEach((q, i) => {
      later(at, () => {
        const price = cls === "mutual_fund"
          ? dec(SYMBOLS[order.symbol].price)
          : priceOf(order.symbol);
        fillReport(order, q, price, i === qtys.length - 1);
      });
      at += gap();
    });
  };

  /** Works an order the venue has accepted (or was working before a restart). */
  const work = (order: Order, start: number) => {
    switch (order.asset_class) {
      case "mutual_fund":
        // One fill of the whole order at the next cut-off, at the NAV.
        fillOver(order, 1, start + ms(5_000), () => 0);
        return;
      case "crypto":
        if (order.type !== "market") return rest(order);
        fillOver(order, 1 + Math.floor(random() * 2), start + ms(100, 300), () => ms(200, 200));
        return;
      default:
        if (order.type !== "market") return rest(order);
        // 2-4 partial fills and a fill, at least 200 ms apart at SIM_SPEED=1, done within ~3 s.
        fillOver(order, 3 + Math.floor(random() * 3), start + ms(200, 200), () => ms(250, 300));
    }
  };

  const accept = (order: Order) => {
    const why = refusal(order);
    const delay = ms(50, 100);
    if (why) return later(delay, () => report(order, "rejected", { reason: why }));
    later(delay, () => {
      report(order, "new").then(() => work(order, 0));
    });
  };

  // --- resting orders: one timer for all of them ---------------------------------------------
  const rest = (order: Order) => {
    resting.set(order.id, order);
    checkResting(order.id);
  };

  /** Whether the market trades through the order's limit (or has triggered its stop). */
  const crosses = (o: Order, price: Dec): "fill" | "triggered" | null => {
    const buy = o.side === "buy";
    if ((o.type === "stop" || o.type === "stop_limit") && o.stop_price !== null) {
      const stop = dec(o.stop_price);
      if (buy ? price.lt(stop) : price.gt(stop)) return null;
      if (o.type === "stop") return "fill";
      return "triggered";
    }
    const limit = dec(o.limit_price!);
    return (buy ? price.lte(limit) : price.gte(limit)) ? "fill" : null;
  };

  const checkResting = (only?: string) => {
    for (const [id, o] of resting) {
      if (only && id !== only) continue;
      const price = priceOf(o.symbol);
      let verdict = crosses(o, price);
      if (verdict === "triggered") {
        // A triggered stop limit becomes a limit order.
        const asLimit: Order = { ...o, type: "limit", stop_price: null };
        resting.set(id, asLimit);
        verdict = crosses(asLimit, price);
      }
      if (verdict === "fill") {
        resting.delete(id);
        const remaining = dec(o.qty!).minus(dec(o.filled_qty));
        fillReport(o, remaining, price, true);
      } else if (only && (o.time_in_force === "ioc" || o.time_in_force === "fok")) {
        resting.delete(id);
        later(ms(20), () => report(o, "canceled", { reason: "not filled immediately" }));
      }
    }
  };
  const tick = () => {
    checkResting();
    later(ms(500), tick);
  };
  later(ms(500), tick);

  // --- what the venue hears -------------------------------------------------------------------
  const onEvent = (e: OrderEvent) => {
    const o = e.order;
    if (e.type === "pending_new") return accept(o);
    if (isFinal(o.status)) {
      resting.delete(o.id);
      return;
    }
    if (e.type === "pending_cancel") {
      later(ms(100, 300), () => {
        resting.delete(o.id);
        report(o, "canceled", { reason: "canceled by the user" });
      });
    } else if (e.type === "pending_replace") {
      later(ms(150, 100), () => report(o, "replaced", e.requested ?? {}));
    } else if (e.type === "new" && o.replaces !== null) {
      work(o, 0); // the replacement carries the new terms
    } else if (resting.has(o.id)) {
      resting.set(o.id, o);
    }
  };

  const unsubscribe = store.changes.subscribe({
    events: (batch) => batch.forEach(({ event }) => onEvent(event)),
    sessionRevoked() {},
    connected() {},
    disconnected() {},
  });

  // Orders a previous run left working: pick them up where they are.
  const resumed = store.workingOrders(10_000).then((working) => {
    for (const { order } of working) {
      if (order.status === "pending_new") accept(order);
      else if (order.status === "new" || order.status === "partially_filled") work(order, ms(100));
      else if (order.status === "pending_cancel") report(order, "canceled", { reason: "canceled" });
      else if (order.status === "pending_replace") {
        report(order, "order_replace_rejected", { reason: "the venue restarted; try again" });
      }
    }
    if (working.length > 0) log.info("venue resumed working orders", { count: working.length });
  }).catch((err) => log.warn("venue could not resume working orders", { err: String(err) }));
  inFlight.add(resumed);

  return {
    async stop() {
      stopped = true;
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      resting.clear();
      await Promise.all([...inFlight]);
    },
    async closeMarket() {
      const working = await store.workingOrders(10_000);
      await Promise.all(
        working
          .filter(({ order }) => order.time_in_force === "day" && order.asset_class !== "crypto")
          .map(({ order }) => {
            resting.delete(order.id);
            return report(order, "expired", { reason: "market closed" });
          }),
      );
    },
  };
}
