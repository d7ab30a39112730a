/**
 * How the venue works an accepted order, per asset class (CONTRACT.md, "The built-in venue"):
 * what it refuses, mutual funds filled whole at the NAV at the next cut-off, crypto in one or two
 * fills within about 1 s, stocks and ETFs in 3-5 pieces within about 3 s; limit and stop orders
 * rest. Quantities are split exactly, so fills add up to the order and dollar orders never spend
 * more than their amount.
 */
import { type Dec, dec, floorTo } from "../orders/decimal.ts";
import { isFinal, type Order, QTY_PLACES } from "../orders/model.ts";
import { SYMBOLS } from "../orders/symbols.ts";
import type { Market } from "./market.ts";
import type { RestingBook } from "./resting.ts";
import { fillFields, type Scheduler } from "./scheduler.ts";

/** Reject reasons, as CONTRACT.md words them. */
export const REASONS = {
  unknownSymbol: "unknown symbol",
  buyingPower: "insufficient buying power",
  assetClass: "asset class does not match symbol",
  marketClosed: "market closed",
} as const;

const MAX_QTY = dec("1000000");
const MAX_NOTIONAL = dec("10000000");

/** Why the venue refuses an order, or null. */
export function refusal(o: Order): string | null {
  const known = SYMBOLS[o.symbol];
  if (!known) return REASONS.unknownSymbol;
  if (o.qty !== null && dec(o.qty).gt(MAX_QTY)) return REASONS.buyingPower;
  // Exactly CONTRACT's two limits: an order of 1,000,000 shares is worked, however dear.
  if (o.notional !== null && dec(o.notional).gt(MAX_NOTIONAL)) return REASONS.buyingPower;
  if (known.assetClass !== o.asset_class) return REASONS.assetClass;
  return null;
}

/**
 * Splits a quantity into `parts` exact pieces, each > 0, that add up to it; a quantity too small
 * to split (e.g. 0.000000001) is one piece.
 */
function split(total: Dec, parts: number): Dec[] {
  const piece = floorTo(total.div(parts), QTY_PLACES);
  if (parts <= 1 || piece.isZero()) return [total];
  const out = Array.from({ length: parts - 1 }, () => piece);
  out.push(total.minus(piece.mul(parts - 1)));
  return out;
}

/** Works an order the venue has accepted (or a previous run left working, or a replacement). */
export function orderWorker(
  sched: Scheduler,
  market: Market,
  book: RestingBook,
  speed: number,
  random: () => number,
): (order: Order) => void {
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
      sched.later(delay, async () => {
        const last = i === pieces.length - 1;
        const after = await sched.report(
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
        sched.later(
          firstDelay,
          () => sched.report(order.id, "canceled", { reason: "amount below the minimum" }),
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

  const { ms } = sched;
  return (order) => {
    switch (order.asset_class) {
      case "mutual_fund": {
        // One fill of the whole order at the NAV, at the next cut-off: 5 s after placement.
        const cutoff = Date.parse(order.created_at) + 5_000 * speed;
        const delay = Math.max(1, cutoff - Date.now());
        fillRemaining(order, 1, delay, () => 0, () => market.nav(order.symbol));
        return;
      }
      case "crypto":
        if (order.type !== "market") return book.rest(order);
        // One or two fills, all within about 1 s of placement.
        fillRemaining(
          order,
          1 + Math.floor(random() * 2),
          ms(100, 200),
          () => ms(200, 200),
          () => market.priceOf(order.symbol),
        );
        return;
      default:
        if (order.type !== "market") return book.rest(order);
        // Stocks and ETFs, by quantity or by amount: 2-4 partial fills and a fill, at least
        // 200 ms apart, done within about 3 s.
        fillRemaining(
          order,
          3 + Math.floor(random() * 3),
          ms(100, 200),
          () => ms(250, 250),
          () => market.priceOf(order.symbol),
        );
    }
  };
}
