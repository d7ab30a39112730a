import assert from "node:assert/strict";
import { dec } from "../../orders/decimal.ts";
import {
  accepts,
  applyReport,
  isRefused,
  newOrder,
  type Outcome,
  requestCancel,
  requestReplace,
  TOO_LATE_TO_CANCEL,
} from "../../orders/lifecycle.ts";
import {
  EVENT_TYPES,
  type EventType,
  type ExecutionReport,
  isFinal,
  type Order,
  ORDER_STATUSES,
  OrderRequest,
  type OrderStatus,
} from "../../orders/model.ts";

const NOW = new Date("2026-11-24T10:00:00.000Z");
const ID = "0190b4a0-0000-7000-8000-000000000001";
let nextId = 100;
const ctx = {
  now: NOW,
  newId: () => `0190b4a0-0000-7000-8000-${String(nextId++).padStart(12, "0")}`,
};

function order(status: OrderStatus, overrides: Partial<Order> = {}): Order {
  const placed = newOrder(
    OrderRequest.parse({
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      type: "limit",
      limit_price: "190",
      qty: "10",
    }),
    ID,
    NOW,
  ).order;
  return { ...placed, status, ...overrides };
}

let execSeq = 0;
function report(type: EventType, extra: Partial<ExecutionReport> = {}): ExecutionReport {
  const fills = type === "fill"
    ? { last_qty: "10", last_price: "187.5" }
    : type === "partial_fill"
    ? { last_qty: "3", last_price: "187.5" }
    : {};
  return {
    order_id: ID,
    exec_id: `e${execSeq++}`,
    type,
    at: NOW.toISOString(),
    ...fills,
    ...extra,
  };
}

function applied(outcome: Outcome) {
  if (isRefused(outcome)) throw new Error(`refused: ${outcome.refused}`);
  return outcome;
}

/** The legal (state, report) pairs and the status each leads to, from the issue and CONTRACT. */
const LEGAL: Record<OrderStatus, Partial<Record<EventType, OrderStatus>>> = {
  pending_new: {
    new: "new",
    partial_fill: "partially_filled",
    fill: "filled",
    pending_cancel: "pending_cancel",
    canceled: "canceled",
    rejected: "rejected",
    expired: "expired",
  },
  new: {
    partial_fill: "partially_filled",
    fill: "filled",
    pending_cancel: "pending_cancel",
    pending_replace: "pending_replace",
    canceled: "canceled",
    expired: "expired",
  },
  partially_filled: {
    partial_fill: "partially_filled",
    fill: "filled",
    pending_cancel: "pending_cancel",
    pending_replace: "pending_replace",
    canceled: "canceled",
    expired: "expired",
  },
  pending_cancel: {
    new: "pending_cancel",
    partial_fill: "pending_cancel",
    fill: "filled",
    canceled: "canceled",
    expired: "expired",
    rejected: "rejected",
    order_cancel_rejected: "new",
  },
  pending_replace: {
    new: "pending_replace",
    rejected: "rejected",
    partial_fill: "pending_replace",
    fill: "filled",
    replaced: "replaced",
    canceled: "canceled",
    expired: "expired",
    order_replace_rejected: "new",
  },
  filled: {},
  canceled: {},
  rejected: {},
  expired: {},
  replaced: {},
};

for (const status of ORDER_STATUSES) {
  for (const type of EVENT_TYPES) {
    const expected = LEGAL[status][type];
    const name = expected
      ? `${type} while ${status} applies and leaves the order ${expected}`
      : `${type} while ${status} is refused and changes nothing`;
    Deno.test(name, () => {
      const before = order(status);
      const frozen = structuredClone(before);
      const outcome = applyReport(before, report(type), ctx);
      assert.deepEqual(before, frozen, "the input order is never mutated");
      assert.equal(accepts(status, type), expected !== undefined);
      if (expected === undefined) {
        assert.ok(isRefused(outcome));
        assert.equal(outcome.code, "illegal_transition");
        assert.match(outcome.refused, /not allowed|pending_new comes only/);
        return;
      }
      const { order: after, steps } = applied(outcome);
      assert.equal(after.status, expected);
      assert.equal(steps[0].type, type);
      assert.equal(after.updated_at, NOW.toISOString());
    });
  }
}

Deno.test("a fill before the new acknowledgement applies", () => {
  const { order: after } = applied(applyReport(order("pending_new"), report("fill"), ctx));
  assert.equal(after.status, "filled");
  assert.equal(after.filled_qty, "10");
  assert.equal(after.filled_avg_price, "187.5");
});

Deno.test("fills update filled_qty and filled_avg_price exactly", () => {
  let o = order("new");
  for (const [q, p] of [["3", "187.32"], ["2", "187.33"], ["5", "187.35"]]) {
    const type = q === "5" ? "fill" : "partial_fill";
    o = applied(applyReport(o, report(type, { last_qty: q, last_price: p }), ctx)).order;
  }
  assert.equal(o.status, "filled");
  assert.equal(o.filled_qty, "10");
  assert.equal(o.filled_avg_price, "187.337");
  assert.equal(o.filled_notional, "1873.37");
});

Deno.test("crypto quantities add exactly: 0.0001 + 0.00002345", () => {
  let o = { ...order("new"), qty: "0.00012345", symbol: "BTC-USD" } as Order;
  o = applied(applyReport(o, report("partial_fill", { last_qty: "0.0001", last_price: "1" }), ctx))
    .order;
  o = applied(applyReport(o, report("fill", { last_qty: "0.00002345", last_price: "1" }), ctx))
    .order;
  assert.equal(o.filled_qty, "0.00012345");
  assert.equal(o.status, "filled");
});

Deno.test("a fill that would exceed the order quantity is refused", () => {
  const o = order("partially_filled", { filled_qty: "8", filled_notional: "1500" });
  const outcome = applyReport(o, report("partial_fill", { last_qty: "3" }), ctx);
  assert.ok(isRefused(outcome));
  assert.match(outcome.refused, /exceed the order quantity/);
});

Deno.test("a partial fill that completes the quantity makes the order filled", () => {
  const o = order("partially_filled", { filled_qty: "7", filled_notional: "1300" });
  const { order: after, steps } = applied(applyReport(o, report("partial_fill"), ctx));
  assert.equal(after.status, "filled");
  assert.equal(steps[0].type, "fill");
});

Deno.test("a fill during pending_cancel wins and the cancel is rejected as too late", () => {
  const { order: after, steps } = applied(
    applyReport(order("pending_cancel"), report("fill"), ctx),
  );
  assert.equal(after.status, "filled");
  assert.deepEqual(steps.map((s) => s.type), ["fill", "order_cancel_rejected"]);
  assert.equal(steps[1].reason, TOO_LATE_TO_CANCEL);
  const late = applyReport(after, report("canceled"), ctx);
  assert.ok(isRefused(late));
});

Deno.test("a partial fill during pending_cancel keeps the cancel pending", () => {
  const { order: after } = applied(
    applyReport(order("pending_cancel"), report("partial_fill"), ctx),
  );
  assert.equal(after.status, "pending_cancel");
  assert.equal(after.filled_qty, "3");
  const back = applied(applyReport(after, report("order_cancel_rejected"), ctx)).order;
  assert.equal(back.status, "partially_filled");
});

Deno.test("a replace down to the filled quantity makes the order filled", () => {
  const o = order("pending_replace", { filled_qty: "4", filled_notional: "750" });
  const { order: after, steps } = applied(applyReport(o, report("replaced", { qty: "3" }), ctx));
  assert.equal(after.status, "filled");
  assert.equal(after.qty, "4");
  assert.equal(steps.length, 1);
});

Deno.test("a replace up ends the old order and starts a new one with the fills so far", () => {
  const o = order("pending_replace", { filled_qty: "4", filled_notional: "750" });
  const { order: old, steps } = applied(
    applyReport(o, report("replaced", { qty: "20", limit_price: "191" }), ctx),
  );
  assert.equal(old.status, "replaced");
  assert.equal(steps.length, 2);
  const replacement = steps[1].order;
  assert.equal(old.replaced_by, replacement.id);
  assert.equal(replacement.replaces, old.id);
  assert.equal(replacement.status, "partially_filled");
  assert.equal(replacement.qty, "20");
  assert.equal(replacement.limit_price, "191");
  assert.equal(replacement.filled_qty, "4");
  assert.equal(steps[1].type, "new");
});

Deno.test("an IOC order's unfilled rest is canceled after a partial fill", () => {
  const o = { ...order("new"), time_in_force: "ioc" } as Order;
  const partial = applied(applyReport(o, report("partial_fill"), ctx)).order;
  const done = applied(applyReport(partial, report("canceled"), ctx)).order;
  assert.equal(done.status, "canceled");
  assert.equal(done.filled_qty, "3");
});

Deno.test("filled_qty never decreases, whatever arrives", () => {
  let o = applied(applyReport(order("new"), report("partial_fill"), ctx)).order;
  for (const type of EVENT_TYPES) {
    const outcome = applyReport(o, report(type), ctx);
    if (!isRefused(outcome)) {
      for (const s of outcome.steps) assert.ok(dec(s.order.filled_qty).gte(dec(o.filled_qty)));
      if (!isFinal(outcome.order.status)) o = outcome.order;
    }
  }
});

Deno.test("a rejected report keeps the venue's reason as given", () => {
  const reason = `<script>alert("x")</script> unknown symbol`;
  const { order: after, steps } = applied(
    applyReport(order("pending_new"), report("rejected", { reason }), ctx),
  );
  assert.equal(after.reject_reason, reason);
  assert.equal(steps[0].reason, reason);
});

Deno.test("cancel requests: pending once, idempotent while pending, refused when final", () => {
  const pending = applied(requestCancel(order("new"), NOW));
  assert.equal(pending.order.status, "pending_cancel");
  assert.deepEqual(applied(requestCancel(pending.order, NOW)).steps, []);
  const refused = requestCancel(order("filled"), NOW);
  assert.ok(isRefused(refused));
  assert.equal(refused.code, "conflict");
});

Deno.test("replace requests carry what was asked and respect the order's kind", () => {
  const pending = applied(requestReplace(order("new"), { qty: "5" }, NOW));
  assert.equal(pending.order.status, "pending_replace");
  assert.deepEqual(pending.steps[0].requested, { qty: "5" });
  const final = requestReplace(order("canceled"), { qty: "5" }, NOW);
  assert.ok(isRefused(final) && final.code === "conflict");
  const notional = requestReplace(order("new", { qty: null, notional: "100" }), { qty: "1" }, NOW);
  assert.ok(isRefused(notional) && notional.code === "invalid_request");
});

Deno.test("a replace asked before the venue's acknowledgement is pending; the ack keeps it so", () => {
  // CONTRACT: PATCH answers 202 pending_replace unless the order is final.
  const pending = applied(requestReplace(order("pending_new"), { qty: "5" }, NOW));
  assert.equal(pending.order.status, "pending_replace");
  const acked = applied(applyReport(pending.order, report("new"), ctx));
  assert.equal(acked.order.status, "pending_replace");
  const done = applied(applyReport(acked.order, report("replaced", { qty: "5" }), ctx));
  assert.equal(done.order.status, "replaced");
  assert.equal(done.steps.at(-1)?.order.qty, "5");
});

Deno.test("notional orders fill up to their notional, never beyond", () => {
  const o = order("new", { qty: null, notional: "100.00", type: "market", limit_price: null });
  const ok = applied(applyReport(o, report("fill", { last_qty: "0.5", last_price: "200" }), ctx));
  assert.equal(ok.order.status, "filled");
  const over = applyReport(o, report("fill", { last_qty: "0.6", last_price: "200" }), ctx);
  assert.ok(isRefused(over));
});
