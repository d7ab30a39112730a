import assert from "node:assert/strict";
import { ExecutionReport, OrderRequest, ReplaceRequest } from "../../orders/model.ts";

const base = { symbol: "aapl", asset_class: "stock", side: "buy", type: "market", qty: "10" };

Deno.test("an order request is normalised: symbol upper-cased, defaults filled in", () => {
  const parsed = OrderRequest.parse(base);
  assert.equal(parsed.symbol, "AAPL");
  assert.equal(parsed.time_in_force, "day");
  assert.equal(parsed.notional, null);
  assert.equal(
    OrderRequest.parse({ ...base, symbol: "BTC-USD", asset_class: "crypto" })
      .time_in_force,
    "gtc",
  );
});

Deno.test("malformed decimals are refused", () => {
  for (
    const qty of [
      "1e3",
      "-1",
      "+1",
      "NaN",
      "Infinity",
      "0",
      "0.0",
      "1.",
      ".5",
      "01",
      "1.1234567891",
      " 1",
      "1,5",
      "0x10",
      "9999999999999999",
    ]
  ) {
    assert.equal(OrderRequest.safeParse({ ...base, qty }).success, false, `qty ${qty}`);
  }
  for (const qty of [10, null, true, {}]) {
    assert.equal(OrderRequest.safeParse({ ...base, qty, notional: undefined }).success, false);
  }
  assert.equal(OrderRequest.safeParse({ ...base, qty: "0.000000001" }).success, true);
});

Deno.test("exactly one of qty and notional; prices match the order type", () => {
  assert.equal(OrderRequest.safeParse({ ...base, notional: "100" }).success, false);
  assert.equal(OrderRequest.safeParse({ ...base, qty: undefined }).success, false);
  assert.equal(
    OrderRequest.safeParse({ ...base, qty: undefined, notional: "250.00" }).success,
    true,
  );
  assert.equal(OrderRequest.safeParse({ ...base, type: "limit" }).success, false);
  assert.equal(
    OrderRequest.safeParse({ ...base, type: "limit", limit_price: "1.00" }).success,
    true,
  );
  assert.equal(OrderRequest.safeParse({ ...base, limit_price: "1.00" }).success, false);
  assert.equal(
    OrderRequest.safeParse({ ...base, type: "stop_limit", limit_price: "1", stop_price: "2" })
      .success,
    true,
  );
});

Deno.test("symbols follow a strict pattern and unknown fields are refused", () => {
  for (const symbol of ["<script>", "A B", "", "TOOLONGSYMBOL1", "AAPL;DROP"]) {
    assert.equal(OrderRequest.safeParse({ ...base, symbol }).success, false, symbol);
  }
  assert.equal(OrderRequest.safeParse({ ...base, symbol: "BRK.B" }).success, true);
  assert.equal(OrderRequest.safeParse({ ...base, user_id: "someone" }).success, false);
});

Deno.test("execution reports need the fields their type needs", () => {
  const report = {
    order_id: "0190b4a0-0000-7000-8000-000000000000",
    exec_id: "x1",
    type: "fill",
    at: "2026-11-24T10:00:00Z",
  };
  assert.equal(ExecutionReport.safeParse(report).success, false);
  const ok = ExecutionReport.parse({ ...report, last_qty: "1", last_price: "2" });
  assert.equal(ok.at, "2026-11-24T10:00:00.000Z");
  assert.equal(ExecutionReport.safeParse({ ...report, type: "bogus" }).success, false);
  assert.equal(
    ExecutionReport.safeParse({ ...report, type: "new", order_id: "nope" }).success,
    false,
  );
  assert.equal(
    ExecutionReport.safeParse({ ...report, type: "new", at: "yesterday" }).success,
    false,
  );
});

Deno.test("a replace asks for qty, limit_price or both", () => {
  assert.equal(ReplaceRequest.safeParse({}).success, false);
  assert.equal(ReplaceRequest.safeParse({ qty: "5" }).success, true);
  assert.equal(ReplaceRequest.safeParse({ limit_price: "abc" }).success, false);
});
