/**
 * The built-in venue (SIMULATOR=on): it plays an execution platform for orders placed through the
 * app. It hears orders on the store's change feed and reports through `store.applyReport` — the
 * same path as POST /api/v1/executions — so a simulated fill and a real one are indistinguishable
 * downstream. Behaviour per asset class follows CONTRACT.md ("The built-in venue"); every delay is
 * multiplied by `speed` (SIM_SPEED).
 *
 * This module wires the venue and owns what it hears (new orders, cancels, replaces, restarts):
 *   market.ts         the symbols and the price walk
 *   scheduler.ts      timers, tracked work and the per-order report queue
 *   asset_classes.ts  refusals and how each asset class is filled
 *   resting.ts        limit and stop orders waiting for their price
 *
 * Quantities and prices are decimals end to end (orders/decimal.ts): a JS number never touches
 * one, so fills add up to the order's quantity exactly and dollar orders never exceed their amount.
 */
import type { Logger } from "../log.ts";
import { isFinal, type Order, type OrderEvent } from "../orders/model.ts";
import type { Changes, OrderStore } from "../store/store.ts";
import { orderWorker, REASONS, refusal } from "./asset_classes.ts";
import { priceWalk } from "./market.ts";
import { restingBook } from "./resting.ts";
import { scheduler } from "./scheduler.ts";

export { REASONS } from "./asset_classes.ts";
export { SYMBOLS } from "../orders/symbols.ts";

/** How many orders a restart picks up (and the close expires) in one go. */
const WORKING_LIMIT = 10_000;

/** A running simulator. */
export interface Simulator {
  /** Stops working orders: unsubscribes, clears every timer and waits for reports in flight. */
  stop(): Promise<void>;
  /** How many times resting orders were checked against the price walk (tests wait on it). */
  restingChecks(): number;
  /** Test clock: drives the market to its close, expiring every working `day` order now. */
  closeMarket(): Promise<void>;
}

/**
 * Starts the venue on `store`. `speed` scales every delay (1 = CONTRACT timings, 0.02 in tests);
 * `random` (default Math.random) drives prices, delays and fill counts so tests can pin them.
 */
export function startSimulator(opts: {
  store: Pick<OrderStore, "applyReport" | "getOrder" | "workingOrders"> & Changes;
  speed: number;
  log: Logger;
  random?: () => number;
}): Simulator {
  const { store, log } = opts;
  const random = opts.random ?? Math.random;
  const speed = opts.speed;
  const sched = scheduler({ store, log, speed, random });
  const { later, ms, report, track } = sched;
  /** One walk for the whole venue: resting checks and market fills see the same prices. */
  const market = priceWalk(random);
  const book = restingBook(sched, market);
  const work = orderWorker(sched, market, book, speed, random);
  /** Orders whose acknowledgement is under way, so a resumed order is not accepted twice. */
  const accepting = new Set<string>();

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
    if (sched.stopped) accepting.delete(order.id);
  };

  // --- what the venue hears --------------------------------------------------------------------

  const cancelSoon = (userId: string, orderId: string) => {
    // 100-350 ms, leaving room for the write inside CONTRACT's 500 ms.
    later(ms(100, 250), async () => {
      // Already final (a fill, a close or an earlier cancel got there first): nothing to cancel.
      const current = await store.getOrder(userId, orderId);
      if (!current || isFinal(current.status)) return;
      book.remove(orderId);
      await report(orderId, "canceled", { reason: "canceled by the user" });
    });
  };

  const onEvent = (userId: string, e: OrderEvent) => {
    const o = e.order;
    if (isFinal(o.status)) {
      book.remove(o.id);
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
    book.update(o);
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
      if (sched.stopped) return;
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
    restingChecks: () => book.ticks,
    async stop() {
      // Synchronous up to the wait: nothing heard or ticking can start work in between.
      const stopped = sched.stop();
      unsubscribe();
      book.clear();
      await stopped;
    },
    async closeMarket() {
      const working = await store.workingOrders(WORKING_LIMIT);
      // Crypto trades around the clock: it has no close, whatever its time in force says.
      const day = working.filter(({ order }) =>
        order.time_in_force === "day" && order.asset_class !== "crypto"
      );
      await Promise.all(day.map(({ order }) => {
        book.remove(order.id);
        return report(order.id, "expired", { reason: REASONS.marketClosed });
      }));
    },
  };
}
