/**
 * What an alert says, the same on every platform (Web Push, FCM, APNs): a title a trader can act
 * on from the lock screen ("Filled: buy 10 AAPL @ 187.35", "Rejected: buy 5 ZZZZ — unknown
 * symbol"), a line of detail, and the data that opens the order when tapped. Quantities and
 * prices are the event's own decimal strings, never a JS number.
 */
import type { Order, OrderEvent } from "../../orders/model.ts";

/** The visible part of an alert. */
export interface AlertText {
  title: string;
  body: string;
}

/** What every platform's alert carries for the app (every value a string, as FCM requires). */
export interface AlertData {
  order_id: string;
  symbol: string;
  type: string;
  seq: string;
  [key: string]: string;
}

/** One alert, built once per event and sent to every target. */
export interface Alert {
  text: AlertText;
  data: AlertData;
  /** The event, for what a platform adds of its own (Web Push's url, status). */
  event: OrderEvent;
}

/** Venue text is data of any length; an alert shows this much of it. */
const MAX_REASON_CHARS = 200;

const VERB: Record<string, string> = {
  partial_fill: "Partially filled",
  fill: "Filled",
  rejected: "Rejected",
  canceled: "Canceled",
  expired: "Expired",
};

/** "buy 10 AAPL" or "buy $250.00 BTC-USD". */
function what(o: Order, qty: string | null = o.qty): string {
  return `${o.side} ${qty ?? `$${o.notional}`} ${o.symbol}`;
}

function clip(text: string, max: number): string {
  const chars = [...text]; // by code point, so an emoji is never cut in half
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** The title and body for an event. */
export function alertText(event: OrderEvent): AlertText {
  const o = event.order;
  const verb = VERB[event.type] ?? event.type;
  const reason = event.reason ? clip(event.reason, MAX_REASON_CHARS) : null;
  const ordered = o.qty ?? `$${o.notional}`;
  switch (event.type) {
    case "fill":
      return {
        title: `${verb}: ${what(o, o.filled_qty)} @ ${
          o.filled_avg_price ?? event.execution?.price
        }`,
        body: `${o.type} order, ${o.filled_qty} filled`,
      };
    case "partial_fill":
      return {
        title: `${verb}: ${what(o, event.execution?.qty ?? o.filled_qty)} @ ${
          event.execution?.price ?? o.filled_avg_price
        }`,
        body: `${o.filled_qty} of ${ordered} filled so far`,
      };
    default:
      return {
        title: `${verb}: ${what(o)}${reason ? ` — ${reason}` : ""}`,
        body: `${o.type} order${
          o.filled_qty !== "0" ? `, ${o.filled_qty} filled before it ended` : ""
        }`,
      };
  }
}

/** The data for an event: what the app needs to open the order and to know where it stands. */
export function alertData(event: OrderEvent): AlertData {
  return {
    order_id: event.order.id,
    symbol: event.order.symbol,
    type: event.type,
    seq: String(event.seq),
  };
}

/** The alert for an event. */
export function alertFor(event: OrderEvent): Alert {
  return { text: alertText(event), data: alertData(event), event };
}

/** UTF-8 length, the unit push services count payloads in. */
export function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * Builds a payload with `make` and, while it is over `maxBytes`, halves the body and then the
 * title (the venue's reason is the only text of unbounded length; ids and decimals are short).
 */
export function fitPayload(alert: Alert, maxBytes: number, make: (t: AlertText) => string): string {
  let { title, body } = alert.text;
  let json = make({ title, body });
  while (byteLength(json) > maxBytes && (body.length > 1 || title.length > 1)) {
    if (body.length > 1) body = clip(body, Math.ceil([...body].length / 2));
    else title = clip(title, Math.ceil([...title].length / 2));
    json = make({ title, body });
  }
  return json;
}
