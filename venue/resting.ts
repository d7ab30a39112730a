/**
 * Resting orders (limits, stops, and IOC/FOK's one look): one timer checks them all against the
 * price walk while anything rests, fills the whole remainder when the price reaches an order, and
 * cancels an IOC/FOK order that did not fill on its first look.
 */
import { type Dec, dec } from "../orders/decimal.ts";
import { isFinal, type Order } from "../orders/model.ts";
import type { Market } from "./market.ts";
import { fillFields, type Scheduler } from "./scheduler.ts";

/** An order waiting for the price to reach its limit or stop. */
interface Resting {
  order: Order;
  /** A stop_limit whose stop was reached now behaves as a limit order. */
  triggered: boolean;
  /** Whether it has been checked once (IOC/FOK get exactly one chance). */
  checked: boolean;
}

/** The venue's book of resting orders. */
export interface RestingBook {
  /** Rests an order: checked at once, then on every tick until it fills or ends. */
  rest(order: Order): void;
  /** Keeps the resting copy current (a pending request, a new limit), keeping its trigger state. */
  update(order: Order): void;
  /** Forgets an order (it ended, or is being canceled or expired). */
  remove(orderId: string): void;
  /** Forgets every order (stop). */
  clear(): void;
  /** How many times the book has checked its orders against the walk on its tick, so far. */
  readonly ticks: number;
}

/** Whether the market price reaches the order now: its stop triggers, then its limit crosses. */
function crosses(r: Resting, price: Dec): boolean {
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
}

/** A resting book ticking on `sched`, priced by `market`. */
export function restingBook(sched: Scheduler, market: Market): RestingBook {
  const resting = new Map<string, Resting>();
  let tickTimer: ReturnType<typeof setTimeout> | null = null;
  let ticks = 0;

  const check = (only?: string) => {
    for (const [id, r] of resting) {
      if (only !== undefined && id !== only) continue;
      const o = r.order;
      if (isFinal(o.status)) {
        resting.delete(id);
        continue;
      }
      const price = market.priceOf(o.symbol);
      const firstLook = !r.checked;
      r.checked = true;
      if (crosses(r, price)) {
        resting.delete(id);
        const remaining = dec(o.qty!).minus(dec(o.filled_qty));
        if (remaining.gt(0)) sched.report(id, "fill", fillFields(remaining, price));
      } else if (firstLook && (o.time_in_force === "ioc" || o.time_in_force === "fok")) {
        // Immediate-or-cancel and fill-or-kill get one look at the market, no resting.
        resting.delete(id);
        sched.later(
          sched.ms(20),
          () => sched.report(id, "canceled", { reason: "not filled immediately" }),
        );
      }
    }
  };

  /** Keeps the single resting-order timer running while anything rests. */
  const ensureTicking = () => {
    if (tickTimer !== null || resting.size === 0 || sched.stopped) return;
    tickTimer = sched.later(sched.ms(500), () => {
      tickTimer = null;
      ticks++;
      check();
      ensureTicking();
    });
  };

  return {
    rest(order) {
      resting.set(order.id, { order, triggered: false, checked: false });
      check(order.id);
      ensureTicking();
    },
    update(order) {
      const r = resting.get(order.id);
      if (r) r.order = order;
    },
    remove(orderId) {
      resting.delete(orderId);
    },
    clear() {
      tickTimer = null;
      resting.clear();
    },
    get ticks() {
      return ticks;
    },
  };
}
