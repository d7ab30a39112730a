import assert from "node:assert/strict";
import { canonical, dec, divide, floorTo, ZERO } from "../../orders/decimal.ts";

Deno.test("0.1 + 0.2 quantities sum to exactly 0.3", () => {
  assert.equal(canonical(dec("0.1").plus(dec("0.2"))), "0.3");
});

Deno.test("the average of 3@187.32, 2@187.33, 5@187.35 is exactly 187.337", () => {
  const fills: Array<[string, string]> = [["3", "187.32"], ["2", "187.33"], ["5", "187.35"]];
  const notional = fills.reduce((sum, [q, p]) => sum.plus(dec(q).mul(p)), ZERO);
  const qty = fills.reduce((sum, [q]) => sum.plus(dec(q)), ZERO);
  assert.equal(canonical(divide(notional, qty, 10)), "187.337");
});

Deno.test("crypto 0.0001 + 0.00002345 is exactly 0.00012345", () => {
  assert.equal(canonical(dec("0.0001").plus(dec("0.00002345"))), "0.00012345");
});

Deno.test("canonical form has no exponent and no trailing zeros", () => {
  const cases: Array<[string, string]> = [
    ["10", "10"],
    ["10.000", "10"],
    ["0.50", "0.5"],
    ["0.000000001", "0.000000001"],
    ["123456789012345.123456789", "123456789012345.123456789"],
    ["0", "0"],
  ];
  for (const [input, expected] of cases) assert.equal(canonical(dec(input)), expected, input);
});

Deno.test("products of the largest inputs stay exact", () => {
  const product = dec("999999999999999.999999999").mul("999999999999999.99999999");
  assert.equal(canonical(product), "999999999999999999999989000000.00000000000000001");
});

Deno.test("floorTo never rounds a notional quantity up", () => {
  assert.equal(canonical(floorTo(dec("250").div("187.33"), 9)), "1.334543319");
});
