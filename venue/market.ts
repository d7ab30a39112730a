/**
 * The venue's market: the price walk, a bounded random walk around each symbol's reference price
 * (orders/symbols.ts). Basis points are integers, so the arithmetic stays exact.
 */
import { type Dec, dec } from "../orders/decimal.ts";
import { SYMBOLS } from "../orders/symbols.ts";

/** One step of the price walk is at most this many basis points of the reference. */
const STEP_BP = 10;
/**
 * The walk never strays further than this from the reference (CONTRACT allows ±2%; staying inside
 * 1.5% leaves room for rounding), so a buy limit at 1.00 can never fill.
 */
const BAND_BP = 150;

/** Prices as the venue sees them. */
export interface Market {
  /** The next simulated price of a symbol (one step of its walk), rounded to cents. */
  priceOf(symbol: string): Dec;
  /** Mutual funds trade once a day at their NAV: the reference price, never the walk. */
  nav(symbol: string): Dec;
}

/** A market whose walk is driven by `random` (tests pin it). */
export function priceWalk(random: () => number): Market {
  /** The current simulated price of each symbol (absent: still at its reference). */
  const prices = new Map<string, Dec>();
  return {
    priceOf(symbol) {
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
    },
    nav: (symbol) => dec(SYMBOLS[symbol].price),
  };
}
