/**
 * The venue's market: the symbols it trades with their reference prices (mutual funds: their
 * NAV), and the price walk, a bounded random walk around each reference. Basis points are
 * integers, so the arithmetic stays exact.
 */
import { type Dec, dec } from "../orders/decimal.ts";
import type { AssetClass } from "../orders/model.ts";

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
