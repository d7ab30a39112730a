/** Display helpers for views: labels, classes and ISO times. Pure; strings in, strings out. */
import type { EventType, Order, OrderStatus } from "../orders/model.ts";

/** Human labels for statuses (badges). */
export const STATUS_LABEL: Record<OrderStatus, string> = {
  pending_new: "Submitted",
  new: "Accepted",
  partially_filled: "Partially filled",
  filled: "Filled",
  pending_cancel: "Cancel requested",
  canceled: "Canceled",
  pending_replace: "Replace requested",
  replaced: "Replaced",
  rejected: "Rejected",
  expired: "Expired",
};

/** Human labels for event types (timeline, toasts). */
export const EVENT_LABEL: Record<EventType, string> = {
  pending_new: "Submitted",
  new: "Accepted by the venue",
  partial_fill: "Partially filled",
  fill: "Filled",
  pending_cancel: "Cancel requested",
  canceled: "Canceled",
  pending_replace: "Replace requested",
  replaced: "Replaced",
  rejected: "Rejected",
  expired: "Expired",
  order_cancel_rejected: "Cancel rejected",
  order_replace_rejected: "Replace rejected",
};

/** What the order asks for, e.g. "Buy 10 AAPL @ 187.25 limit" or "Buy $250.00 VFIAX". */
export function orderSummary(o: Order): string {
  const side = o.side === "buy" ? "Buy" : "Sell";
  const amount = o.qty ?? `$${o.notional}`;
  const price = o.type === "limit" || o.type === "stop_limit"
    ? ` @ ${o.limit_price} limit`
    : o.type === "stop"
    ? ` stop ${o.stop_price}`
    : " market";
  return `${side} ${amount} ${o.symbol}${price}`;
}

/** How much the order asks for: "10" or "$250.00". */
export function sizeText(o: Order): string {
  return o.qty ?? `$${o.notional}`;
}

/** The price side of an order: "market", "limit 187.25", "stop 180", "stop 180 limit 179.5". */
export function priceText(o: Order): string {
  switch (o.type) {
    case "market":
      return "market";
    case "limit":
      return `limit ${o.limit_price}`;
    case "stop":
      return `stop ${o.stop_price}`;
    case "stop_limit":
      return `stop ${o.stop_price} limit ${o.limit_price}`;
  }
}

/** The moment a row's relative time counts from, and what it says ("filled 2 s ago"). */
export function rowTime(o: Order): { verb: string; at: string } {
  if (o.status === "filled" && o.filled_at) return { verb: "filled", at: o.filled_at };
  if (o.status === "canceled" && o.canceled_at) return { verb: "canceled", at: o.canceled_at };
  if (o.status === "pending_new") return { verb: "submitted", at: o.created_at };
  return { verb: STATUS_LABEL[o.status].toLowerCase(), at: o.updated_at };
}

/** An ISO time as a stable UTC text, for when scripts are off. */
export function utcText(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
