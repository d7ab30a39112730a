/** The pages: login, the blotter, one order's timeline, devices. Pure: data in, HTML out. */
import type { Order, OrderEvent } from "../orders/model.ts";
import type { RealtimeStatus, Session } from "./props.ts";
import { type AlertChannel, AlertChannels } from "./alert_channels.tsx";
import { StatusBanner, TimelineEntry } from "./fragments.tsx";
import { orderSummary, STATUS_LABEL } from "./format.ts";
import { Layout } from "./layout.tsx";
import { COLUMN_COUNT, OrderRow, OrdersHead } from "./order_row.tsx";
import { NewOrderButton, Ticket } from "./ticket.tsx";
import { Toasts } from "./layout.tsx";

/** The login page (dev mode). */
export function LoginPage(props: { error?: string }) {
  return (
    <Layout title="Sign in" user={null}>
      <section class="login">
        <h1>Sign in</h1>
        <p class="hint">Development login: any username signs in as that user.</p>
        {props.error ? <p class="error" role="alert">{props.error}</p> : null}
        <form method="post" action="/login">
          <label>
            Username{" "}
            <input name="username" autocomplete="username" required maxlength={64} autofocus />
          </label>
          <button type="submit">Sign in</button>
        </form>
      </section>
    </Layout>
  );
}

/** Tabs of the blotter: which orders each shows. */
export const TABS = [
  ["all", "All"],
  ["open", "Open"],
  ["filled", "Filled"],
  ["closed", "Canceled & rejected"],
] as const;

/** Tab labels too long for a phone's one row of tabs, and what a phone shows instead. */
const SHORT_TAB_LABEL: Partial<Record<Tab, string>> = { closed: "Closed" };

/** A tab's label; with a short form, each shows at the width it suits (CSS picks one). */
function TabLabel(props: { tab: Tab; label: string }) {
  const short = SHORT_TAB_LABEL[props.tab];
  if (!short) return <>{props.label}</>;
  return (
    <>
      <span class="label-long">{props.label}</span>
      <span class="label-short">{short}</span>
    </>
  );
}
export type Tab = typeof TABS[number][0];

/** The row that loads the next page when it scrolls into view (infinite scroll). */
export function MoreRow(props: { tab: Tab; cursor: string }) {
  const url = `/orders/rows?tab=${props.tab}&cursor=${encodeURIComponent(props.cursor)}`;
  return (
    <tr id="more-orders" class="more" hx-get={url} hx-trigger="intersect once" hx-swap="outerHTML">
      <td colspan={COLUMN_COUNT}>
        <a href={`/orders?tab=${props.tab}&cursor=${encodeURIComponent(props.cursor)}`}>More…</a>
      </td>
    </tr>
  );
}

/**
 * The page's stream, opened from the id its rows were read at. Its messages are all out-of-band
 * fragments: nothing is swapped into #live itself.
 */
function LiveStream(props: { lastEventId: string }) {
  return (
    <div
      id="live"
      hx-sse:connect={`/stream?last_event_id=${props.lastEventId}`}
      hx-swap="none"
      data-last-event-id={props.lastEventId}
    >
    </div>
  );
}

/** The blotter: ticket, tabs, rows, and the live stream from the seq the rows were read at. */
export function BlotterPage(props: {
  user: string;
  orders: Order[];
  nextCursor: string | null;
  /** The id (SEQ.TAG, or "0" before any event) the rows were read at: the stream opens there. */
  lastEventId: string;
  tab: Tab;
  status: RealtimeStatus;
  error?: string;
}) {
  return (
    <Layout title="Orders" user={props.user} ownToasts>
      <LiveStream lastEventId={props.lastEventId} />
      <StatusBanner status={props.status} />
      <div class="blotter">
        <aside class="side-column">
          <Ticket error={props.error} />
          <Toasts />
        </aside>
        <section class="orders" aria-labelledby="orders-title">
          <h1 id="orders-title" class="visually-hidden">Orders</h1>
          <div class="orders-bar">
            <nav class="tabs" aria-label="Show orders">
              {TABS.map(([key, label]) => (
                <a
                  href={`/orders?tab=${key}`}
                  class={key === props.tab ? "tab active" : "tab"}
                  data-tab={key}
                  {...(key === props.tab ? { "aria-current": "page" } : {})}
                >
                  <TabLabel tab={key} label={label} />
                </a>
              ))}
            </nav>
            <NewOrderButton />
          </div>
          <div class="table-wrap">
            <table id="orders" data-tab={props.tab}>
              <OrdersHead />
              <tbody id="orders-body">
                {props.orders.map((o) => <OrderRow key={o.id} order={o} />)}
                {props.nextCursor ? <MoreRow tab={props.tab} cursor={props.nextCursor} /> : null}
              </tbody>
            </table>
          </div>
          {props.orders.length === 0
            ? <p class="empty">No orders yet. Place one with the ticket.</p>
            : null}
        </section>
      </div>
    </Layout>
  );
}

/** One order and its timeline, live. */
export function OrderPage(props: {
  user: string;
  order: Order;
  events: OrderEvent[];
  /** The id (SEQ.TAG, or "0" before any event) the rows were read at: the stream opens there. */
  lastEventId: string;
  status: RealtimeStatus;
}) {
  const o = props.order;
  return (
    <Layout title={`${o.symbol} order`} user={props.user}>
      <LiveStream lastEventId={props.lastEventId} />
      <StatusBanner status={props.status} />
      <section class="order-page">
        <h1>{orderSummary(o)}</h1>
        <p>
          Status:{" "}
          <strong id="order-status" data-order-id={o.id} aria-live="polite">
            {STATUS_LABEL[o.status]}
          </strong>{" "}
          · id <code>{o.id}</code>
        </p>
        {o.replaces
          ? (
            <p>
              Replaces <a href={`/orders/${o.replaces}`}>{o.replaces}</a>
            </p>
          )
          : null}
        {o.replaced_by
          ? (
            <p>
              Replaced by <a href={`/orders/${o.replaced_by}`}>{o.replaced_by}</a>
            </p>
          )
          : null}
        <div class="table-wrap">
          <table id="orders">
            <OrdersHead />
            <tbody id="orders-body-single">
              <OrderRow order={o} />
            </tbody>
          </table>
        </div>
        <h2>Timeline</h2>
        <ol id={`timeline-${o.id}`} class="timeline">
          {props.events.map((e) => <TimelineEntry key={e.seq} event={e} />)}
        </ol>
      </section>
    </Layout>
  );
}

/** Per session id, how background alerts reach it (a session not listed gets none). */
export type SessionAlerts = Record<string, AlertChannel[]>;

/** This user's device sessions, and how each receives alerts; revoke one, or all others. */
export function DevicesPage(
  props: { user: string; sessions: Session[]; current: string; alerts?: SessionAlerts },
) {
  return (
    <Layout title="Devices" user={props.user}>
      <section class="devices">
        <h1>Signed-in devices</h1>
        <ul>
          {props.sessions.map((s) => (
            <li data-session-id={s.id} class={s.id === props.current ? "current" : ""}>
              {/* The name line has room for more about the device (e.g. its push platform). */}
              <div class="device-info">
                <div class="device-name">
                  <strong>{s.label}</strong>
                  {s.id === props.current ? <em>this device</em> : null}
                </div>
                <div class="device-meta">
                  <span>
                    signed in <time datetime={s.created_at} data-verb="">{s.created_at}</time>
                  </span>{" "}
                  <span>
                    · last seen <time datetime={s.last_seen_at} data-verb="">{s.last_seen_at}</time>
                  </span>{" "}
                  <AlertChannels channels={props.alerts?.[s.id] ?? []} />
                </div>
              </div>
              {s.id === props.current
                ? null
                : (
                  <form method="post" action={`/devices/${s.id}/revoke`}>
                    <button type="submit" aria-label={`Sign out ${s.label}`}>Sign out</button>
                  </form>
                )}
            </li>
          ))}
        </ul>
        {props.sessions.length > 1
          ? (
            <form method="post" action="/devices/revoke-others">
              <button type="submit">Sign out all other devices</button>
            </form>
          )
          : null}
      </section>
    </Layout>
  );
}
