/**
 * What the HTML stream sends: one message per batch of events, made of out-of-band fragments that
 * htmx swaps by element id — the latest row of each order (inserted at the top when new), a toast
 * for fills, rejections, cancels and expiries, and the order page's timeline entries.
 */
import { ALERT_EVENT_TYPES, type OrderEvent } from "../orders/model.ts";
import type { RealtimeStatus } from "./props.ts";
import { EVENT_LABEL } from "./format.ts";
import { OrderRow } from "./order_row.tsx";

/** Event types that earn a toast: the same that alert a phone in the background. */
const TOAST_TYPES = ALERT_EVENT_TYPES;

/** A toast for one event. */
export function Toast(props: { event: OrderEvent }) {
  const { event } = props;
  const o = event.order;
  const text = event.execution
    ? `${
      EVENT_LABEL[event.type]
    }: ${o.side} ${event.execution.qty} ${o.symbol} @ ${event.execution.price}`
    : `${EVENT_LABEL[event.type]}: ${o.side} ${o.qty ?? `$${o.notional}`} ${o.symbol}`;
  return (
    <div class={`toast toast-${event.type}`} data-order-id={o.id} role="status">
      <a href={`/orders/${o.id}`}>{text}</a>
      {event.reason ? <span class="reason">{event.reason}</span> : null}
    </div>
  );
}

/** One line of an order's timeline. */
export function TimelineEntry(props: { event: OrderEvent }) {
  const e = props.event;
  return (
    <li id={`event-${e.seq}`} class={`event event-${e.type}`}>
      <time datetime={e.at} data-verb="">{e.at}</time>
      <strong>{EVENT_LABEL[e.type]}</strong>
      {e.execution ? <span>{e.execution.qty} @ {e.execution.price}</span> : null}
      {e.reason ? <span class="reason">{e.reason}</span> : null}
    </li>
  );
}

/** Whether this event brings an order onto the blotter for the first time. */
function isArrival(e: OrderEvent): boolean {
  return e.type === "pending_new" || (e.type === "new" && e.order.replaces !== null);
}

/**
 * The HTML for a batch of events, on one line (an SSE data line cannot hold a newline; any in
 * venue text becomes a character reference, which HTML reads back as the same character).
 */
export function renderStreamBatch(events: OrderEvent[]): string {
  const latest = new Map<string, { event: OrderEvent; arrival: boolean }>();
  for (const e of events) {
    const prev = latest.get(e.order.id);
    latest.set(e.order.id, { event: e, arrival: (prev?.arrival ?? false) || isArrival(e) });
  }
  // New rows first, then updated ones. htmx parses a message inside a <template>, whose first tag
  // sets the parser's mode: opening with a bare <tr> puts it "in table body", where a later
  // <tbody> tag is dropped, so the new rows would lose their wrapper (and the swap that puts them
  // into #orders-body) and never show. Opening with <tbody> keeps every later <tbody> and <tr>.
  const rows = [...latest.values()];
  let html = "";
  for (const { event } of rows.filter((r) => r.arrival)) {
    html += String(
      <tbody hx-swap-oob="afterbegin:#orders-body">
        <OrderRow order={event.order} />
      </tbody>,
    );
  }
  for (const { event } of rows.filter((r) => !r.arrival)) {
    html += String(<OrderRow order={event.order} oob />);
  }
  for (const e of events) {
    html += String(
      <ol hx-swap-oob={`beforeend:#timeline-${e.order.id}`}>
        <TimelineEntry event={e} />
      </ol>,
    );
    if (TOAST_TYPES.has(e.type)) {
      html += String(
        <div hx-swap-oob="beforeend:#toasts">
          <Toast event={e} />
        </div>,
      );
    }
  }
  return oneLine(html);
}

/** The realtime banner, swapped by id when the change feed is lost or back. */
export function StatusBanner(props: { status: RealtimeStatus; oob?: boolean }) {
  const degraded = props.status.realtime !== "ok";
  return (
    <div
      id="realtime-banner"
      class={degraded ? "banner degraded" : "banner"}
      data-realtime={props.status.realtime}
      hidden={!degraded}
      {...(props.oob ? { "hx-swap-oob": "true" } : {})}
    >
      {degraded
        ? `Real-time updates temporarily unavailable (${
          props.status.reason ?? "reconnecting"
        }); refreshing every 5 s.`
        : ""}
    </div>
  );
}

/** The banner as a one-line stream fragment. */
export function renderStatusBanner(status: RealtimeStatus): string {
  return oneLine(String(<StatusBanner status={status} oob />));
}

function oneLine(html: string): string {
  return html.replaceAll("\r", "&#13;").replaceAll("\n", "&#10;");
}
