/**
 * The order state machine, pure: an order and a report (or a user's action) in, the steps to
 * record out — or a refusal with a reason. No clock, no I/O, no randomness: `now` and `newId` are
 * passed in. Follows Alpaca's and FIX's order semantics; each step becomes one event.
 */
import { canonical, type Dec, dec, divide } from "./decimal.ts";
import {
  type EventType,
  type Execution,
  type ExecutionReport,
  isFinal,
  type Order,
  type OrderRequest,
  type OrderStatus,
  PRICE_PLACES,
  type ReplaceRequest,
} from "./model.ts";

/** One change to record: the order's snapshot after it and the event that describes it. */
export interface Step {
  order: Order;
  type: EventType;
  execution?: Execution;
  reason?: string;
  requested?: { qty?: string; limit_price?: string };
}

/** What applying something yields: steps to record (possibly none), or a refusal. */
export type Outcome =
  | { order: Order; steps: Step[] }
  | { refused: string; code: "illegal_transition" | "conflict" | "invalid_request" };

/** Whether an outcome is a refusal. */
export function isRefused(outcome: Outcome): outcome is Extract<Outcome, { refused: string }> {
  return "refused" in outcome;
}

/** Reason given when a fill beat a pending cancel. */
export const TOO_LATE_TO_CANCEL = "too late to cancel";
/** Reason given when a fill beat a pending replace. */
export const TOO_LATE_TO_REPLACE = "too late to replace";

/** Average prices carry a little more precision than any single price. */
const AVG_PLACES = PRICE_PLACES + 2;

/**
 * Which report types each status accepts. Anything not listed is refused. The target status is
 * computed by the handlers below (fills depend on quantities, rejections of a pending request
 * return to the prior state).
 */
const ACCEPTS: Record<OrderStatus, ReadonlySet<EventType>> = {
  pending_new: new Set<EventType>([
    "new",
    "partial_fill",
    "fill",
    "pending_cancel",
    "canceled",
    "rejected",
    "expired",
  ]),
  new: new Set<EventType>([
    "partial_fill",
    "fill",
    "pending_cancel",
    "pending_replace",
    "canceled",
    "expired",
  ]),
  partially_filled: new Set<EventType>([
    "partial_fill",
    "fill",
    "pending_cancel",
    "pending_replace",
    "canceled",
    "expired",
  ]),
  pending_cancel: new Set<EventType>([
    "new",
    "partial_fill",
    "fill",
    "canceled",
    "expired",
    "rejected",
    "order_cancel_rejected",
  ]),
  pending_replace: new Set<EventType>([
    // A replace may be asked before the venue acknowledged the order (CONTRACT: only a final
    // order refuses one): the acknowledgement, or a rejection, can then still arrive.
    "new",
    "rejected",
    "partial_fill",
    "fill",
    "replaced",
    "canceled",
    "expired",
    "order_replace_rejected",
  ]),
  filled: new Set(),
  canceled: new Set(),
  rejected: new Set(),
  expired: new Set(),
  replaced: new Set(),
};

/** Whether a status accepts a report type (the transition table, for tests and docs). */
export function accepts(status: OrderStatus, type: EventType): boolean {
  return ACCEPTS[status].has(type);
}

/** The first step of every order: `pending_new`, as placed by the user. */
export function newOrder(request: OrderRequest, id: string, now: Date): Step {
  const at = now.toISOString();
  const order: Order = {
    id,
    client_order_id: request.client_order_id,
    symbol: request.symbol,
    asset_class: request.asset_class,
    side: request.side,
    type: request.type,
    time_in_force: request.time_in_force,
    qty: request.qty,
    notional: request.notional,
    limit_price: request.limit_price,
    stop_price: request.stop_price,
    status: "pending_new",
    filled_qty: "0",
    filled_avg_price: null,
    filled_notional: "0",
    reject_reason: null,
    created_at: at,
    updated_at: at,
    filled_at: null,
    canceled_at: null,
    replaces: null,
    replaced_by: null,
  };
  return { order, type: "pending_new" };
}

/** The user asks to cancel. Asking again while a cancel is pending changes nothing. */
export function requestCancel(order: Order, now: Date): Outcome {
  if (isFinal(order.status)) {
    return { refused: `the order is already ${order.status}`, code: "conflict" };
  }
  if (order.status === "pending_cancel") return { order, steps: [] };
  if (order.status === "pending_replace") {
    return {
      refused: "a replace is pending; cancel once it has been confirmed or rejected",
      code: "conflict",
    };
  }
  return step(order, { status: "pending_cancel" }, now, { type: "pending_cancel" });
}

/** The user asks to change quantity or limit price; the venue confirms with `replaced`. */
export function requestReplace(order: Order, changes: ReplaceRequest, now: Date): Outcome {
  if (isFinal(order.status)) {
    return { refused: `the order is already ${order.status}`, code: "conflict" };
  }
  if (order.status === "pending_cancel" || order.status === "pending_replace") {
    return { refused: `the order is ${order.status}; wait for the venue`, code: "conflict" };
  }
  if (order.notional !== null) {
    return { refused: "notional orders cannot be replaced", code: "invalid_request" };
  }
  if (changes.limit_price !== undefined && order.limit_price === null) {
    return {
      refused: `limit_price can only change on limit and stop_limit orders`,
      code: "invalid_request",
    };
  }
  const requested = {
    ...(changes.qty === undefined ? {} : { qty: changes.qty }),
    ...(changes.limit_price === undefined ? {} : { limit_price: changes.limit_price }),
  };
  return step(order, { status: "pending_replace" }, now, { type: "pending_replace", requested });
}

/** Applies a venue's report to the order it names. */
export function applyReport(
  order: Order,
  report: ExecutionReport,
  ctx: { now: Date; newId: () => string },
): Outcome {
  if (!ACCEPTS[order.status].has(report.type)) {
    return {
      refused: `${report.type} is not allowed while the order is ${order.status}`,
      code: "illegal_transition",
    };
  }
  const { now } = ctx;
  switch (report.type) {
    case "partial_fill":
    case "fill":
      return applyFill(order, report, now);
    case "replaced":
      return applyReplaced(order, report, ctx);
    case "new":
      // An acknowledgement that arrives while a cancel is pending leaves the cancel pending.
      return step(order, { status: order.status === "pending_new" ? "new" : order.status }, now, {
        type: "new",
      });
    case "pending_cancel":
      return step(order, { status: "pending_cancel" }, now, { type: "pending_cancel" });
    case "pending_replace":
      return step(order, { status: "pending_replace" }, now, { type: "pending_replace" });
    case "canceled":
      return step(order, { status: "canceled", canceled_at: report.at }, now, {
        type: "canceled",
        reason: report.reason,
      });
    case "expired":
      return step(order, { status: "expired" }, now, { type: "expired", reason: report.reason });
    case "rejected": {
      if (dec(order.filled_qty).gt(0)) {
        return { refused: "an order with fills cannot be rejected", code: "illegal_transition" };
      }
      const reason = report.reason ?? "rejected by the venue";
      return step(order, { status: "rejected", reject_reason: reason }, now, {
        type: "rejected",
        reason,
      });
    }
    case "order_cancel_rejected":
    case "order_replace_rejected":
      return step(order, { status: priorStatus(order) }, now, {
        type: report.type,
        reason: report.reason,
      });
    case "pending_new":
      // Only placing an order creates pending_new; no status accepts it from a venue.
      return {
        refused: "pending_new comes only from placing an order",
        code: "illegal_transition",
      };
  }
}

/** Where an order goes back to when a pending cancel or replace is refused. */
function priorStatus(order: Order): OrderStatus {
  return dec(order.filled_qty).gt(0) ? "partially_filled" : "new";
}

/** Applies a partial fill or a fill, exactly. */
function applyFill(order: Order, report: ExecutionReport, now: Date): Outcome {
  // The schema guarantees both on fills.
  const lastQty = dec(report.last_qty!), lastPrice = dec(report.last_price!);
  const filledQty = dec(order.filled_qty).plus(lastQty);
  const filledNotional = dec(order.filled_notional).plus(lastQty.mul(lastPrice));
  let complete = report.type === "fill";
  if (order.qty !== null) {
    const qty = dec(order.qty);
    if (filledQty.gt(qty)) {
      return {
        refused: `a fill of ${report.last_qty} would exceed the order quantity ` +
          `(${order.filled_qty} of ${order.qty} filled)`,
        code: "illegal_transition",
      };
    }
    if (complete && filledQty.lt(qty)) {
      return {
        refused: `a fill must complete the order (${canonical(filledQty)} of ${order.qty}); ` +
          `send partial_fill`,
        code: "illegal_transition",
      };
    }
    complete = filledQty.eq(qty);
  } else if (order.notional !== null && filledNotional.gt(dec(order.notional))) {
    return {
      refused: `a fill of ${report.last_qty} @ ${report.last_price} would exceed the order's ` +
        `notional ${order.notional}`,
      code: "illegal_transition",
    };
  }

  const pending = order.status === "pending_cancel" || order.status === "pending_replace";
  const status: OrderStatus = complete ? "filled" : pending ? order.status : "partially_filled";
  const execution: Execution = {
    id: report.exec_id,
    qty: report.last_qty!,
    price: report.last_price!,
    at: report.at,
  };
  const filled = withChanges(order, {
    status,
    filled_qty: canonical(filledQty),
    filled_notional: canonical(filledNotional),
    filled_avg_price: averagePrice(filledNotional, filledQty),
    filled_at: complete ? report.at : order.filled_at,
  }, now);
  const steps: Step[] = [{ order: filled, type: complete ? "fill" : "partial_fill", execution }];
  // The fill won the race: the pending request can no longer happen, and the user is told so.
  if (complete && order.status === "pending_cancel") {
    steps.push({ order: filled, type: "order_cancel_rejected", reason: TOO_LATE_TO_CANCEL });
  } else if (complete && order.status === "pending_replace") {
    steps.push({ order: filled, type: "order_replace_rejected", reason: TOO_LATE_TO_REPLACE });
  }
  return { order: filled, steps };
}

/**
 * The venue confirmed a replace. Following FIX, the new quantity is the order's total, fills
 * included: at or below what is already filled, the order is done (filled); otherwise the old
 * order ends as `replaced` and a new one carries the new terms and the fills so far.
 */
function applyReplaced(
  order: Order,
  report: ExecutionReport,
  ctx: { now: Date; newId: () => string },
): Outcome {
  if (order.qty === null) {
    return { refused: "notional orders cannot be replaced", code: "illegal_transition" };
  }
  const qty = report.qty ?? order.qty;
  const limitPrice = report.limit_price ?? order.limit_price;
  if (report.limit_price !== undefined && order.limit_price === null) {
    return { refused: "this order has no limit price to replace", code: "illegal_transition" };
  }
  const filledQty = dec(order.filled_qty);
  if (filledQty.gt(0) && dec(qty).lte(filledQty)) {
    const done = withChanges(order, {
      status: "filled",
      qty: order.filled_qty,
      filled_at: report.at,
    }, ctx.now);
    return { order: done, steps: [{ order: done, type: "replaced", reason: report.reason }] };
  }
  const newId = ctx.newId();
  const at = ctx.now.toISOString();
  const old = withChanges(order, { status: "replaced", replaced_by: newId }, ctx.now);
  const replacement: Order = {
    ...order,
    id: newId,
    // The client's id names the original request; the replacement gets none of its own.
    client_order_id: null,
    qty,
    limit_price: limitPrice,
    status: filledQty.gt(0) ? "partially_filled" : "new",
    created_at: at,
    updated_at: at,
    replaces: order.id,
    replaced_by: null,
  };
  return {
    order: old,
    steps: [{ order: old, type: "replaced", reason: report.reason }, {
      order: replacement,
      type: "new",
    }],
  };
}

function averagePrice(notional: Dec, qty: Dec): string | null {
  return qty.isZero() ? null : canonical(divide(notional, qty, AVG_PLACES));
}

function withChanges(order: Order, changes: Partial<Order>, now: Date): Order {
  return { ...order, ...changes, updated_at: now.toISOString() };
}

/** One step on one order; `reason` is dropped when the venue gave none. */
function step(
  order: Order,
  changes: Partial<Order>,
  now: Date,
  event: Omit<Step, "order">,
): Outcome {
  const next = withChanges(order, changes, now);
  const described: Step = { order: next, type: event.type };
  if (event.reason !== undefined) described.reason = event.reason;
  if (event.requested !== undefined) described.requested = event.requested;
  return { order: next, steps: [described] };
}
