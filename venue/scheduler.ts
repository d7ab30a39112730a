/**
 * The venue's timers and its report queue: every delay goes through `later` (so stop() clears
 * them all), every async step is tracked (so stop() waits for it), and each order's reports reach
 * the store one after another, in the order they were asked for.
 */
import type { Logger } from "../log.ts";
import { canonical, type Dec } from "../orders/decimal.ts";
import { AppError } from "../orders/errors.ts";
import { type EventType, ExecutionReport, type Order } from "../orders/model.ts";
import type { OrderStore } from "../store/store.ts";

/** Timers, tracked work and the per-order report queue of one running venue. */
export interface Scheduler {
  /** Whether stop() was called: nothing new starts. */
  readonly stopped: boolean;
  /** A delay in ms: `base` plus up to `spread` at random, scaled by speed. */
  ms(base: number, spread?: number): number;
  /** Runs `fn` after `delay` ms unless stopped first; async work it starts is tracked. */
  later(
    delay: number,
    fn: () => void | Promise<unknown>,
  ): ReturnType<typeof setTimeout> | null;
  /** Tracks a promise until it settles, so stop() waits for it. */
  track<T>(p: Promise<T>): Promise<T>;
  /**
   * Queues a report behind the order's earlier ones, so e.g. a fill never overtakes a partial.
   * Answers the order as it is after the report, or null if the store refused it (or stopped).
   */
  report(orderId: string, type: EventType, fields?: Record<string, string>): Promise<Order | null>;
  /** Stops: clears every timer and waits for work in flight. */
  stop(): Promise<void>;
}

/** Tries of a report the store answered `unavailable` (503) before it is given up (~30 s). */
const UNAVAILABLE_RETRIES = 10;

/** A scheduler that reports to `store`; `speed` scales every delay. */
export function scheduler(opts: {
  store: Pick<OrderStore, "applyReport">;
  log: Logger;
  speed: number;
  random: () => number;
}): Scheduler {
  const { store, log, speed, random } = opts;
  /** Every pending timer, so stop() can clear them all. */
  const timers = new Set<ReturnType<typeof setTimeout>>();
  /** Reports and timer callbacks still running; stop() waits for them. */
  const inFlight = new Set<Promise<unknown>>();
  /** The tail of each order's report queue: one order's reports reach the store in order. */
  const queues = new Map<string, Promise<unknown>>();
  let stopped = false;
  /** Wakes every retry pause at once when the scheduler stops, so stop() never waits them out. */
  const stopping = new AbortController();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      stopping.signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(t);
        stopping.signal.removeEventListener("abort", done);
        resolve();
      }
    });

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    // The caller handles `p`'s failure; this copy only stops tracking it.
    p.finally(() => inFlight.delete(p)).catch(() => {});
    return p;
  };

  /** Sends one report now; answers the order as it is after it, or null if the store refused. */
  const send = async (
    orderId: string,
    type: EventType,
    fields: Record<string, string>,
  ): Promise<Order | null> => {
    // One exec_id for every try: a retry of a report that did commit is a duplicate, not a second
    // fill (the same rule a real venue follows after a 503).
    const execId = `sim-${crypto.randomUUID()}`;
    try {
      for (let attempt = 1;; attempt++) {
        const now = new Date();
        try {
          const result = await store.applyReport(
            ExecutionReport.parse({
              order_id: orderId,
              exec_id: execId,
              type,
              at: now.toISOString(),
              ...fields,
            }),
            now,
          );
          // A replace answers the old order; the report's own order is what the caller asked about.
          return result.events.find((e) => e.order.id === orderId)?.order ?? result.order;
        } catch (err) {
          // Overloaded (WRITE_QUEUE_LIMIT) or the database away: the report is not lost, it waits
          // and goes again, as a venue does after a 503. Bounded; then it is logged as failed.
          if (
            !(err instanceof AppError && err.code === "unavailable") || stopped ||
            attempt >= UNAVAILABLE_RETRIES
          ) throw err;
          await pause(Math.min(250 * 2 ** (attempt - 1), 4_000));
        }
      }
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

  return {
    get stopped() {
      return stopped;
    },
    ms: (base, spread = 0) => Math.max(1, (base + random() * spread) * speed),
    track,
    later(delay, fn) {
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
    },
    report(orderId, type, fields = {}) {
      if (stopped) return Promise.resolve(null);
      const previous = queues.get(orderId) ?? Promise.resolve();
      const p = previous.then(() => send(orderId, type, fields));
      queues.set(orderId, p);
      track(p).finally(() => {
        if (queues.get(orderId) === p) queues.delete(orderId);
      });
      return p;
    },
    async stop() {
      stopped = true;
      stopping.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      // A report finishing can start another step; report() refuses once stopped, so this ends.
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}

/** A fill report's fields: the quantity as an exact decimal, the price in cents. */
export function fillFields(qty: Dec, price: Dec): Record<string, string> {
  return { last_qty: canonical(qty), last_price: price.toFixed(2) };
}
