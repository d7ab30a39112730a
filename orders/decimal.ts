/**
 * Exact decimal arithmetic for quantities and prices. Values cross every edge as strings; inside
 * they are `Dec` (decimal.js with enough precision that sums and products of our bounded inputs
 * are exact). No binary floating point ever touches a quantity or a price.
 */
import { Decimal as DecimalJs } from "decimal.js";

/** A decimal.js constructor with precision far beyond our inputs and never an exponent in output. */
const D = DecimalJs.clone({
  precision: 60,
  rounding: DecimalJs.ROUND_HALF_EVEN,
  toExpNeg: -60,
  toExpPos: 60,
});

/** The exact decimal type used inside the domain. */
export type Dec = InstanceType<typeof D>;

/** Parses a decimal string that the schemas already validated. */
export function dec(value: string): Dec {
  return new D(value);
}

/** Zero, for sums. */
export const ZERO: Dec = new D(0);

/** Canonical text: no exponent, no trailing zeros, no trailing point ("10", "187.337"). */
export function canonical(value: Dec): string {
  // toFixed() never uses exponent notation; trailing zeros then go.
  const text = value.toFixed();
  if (!text.includes(".")) return text === "-0" ? "0" : text;
  return text.replace(/0+$/, "").replace(/\.$/, "");
}

/** Divides and rounds half-even to `places` decimals (average prices). */
export function divide(numerator: Dec, denominator: Dec, places: number): Dec {
  return numerator.div(denominator).toDecimalPlaces(places, D.ROUND_HALF_EVEN);
}

/** Rounds down (toward zero) to `places` decimals: a notional buy never spends more than given. */
export function floorTo(value: Dec, places: number): Dec {
  return value.toDecimalPlaces(places, D.ROUND_DOWN);
}
