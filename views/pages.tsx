/** The pages: login, the blotter, one order's timeline, devices. Pure: data in, HTML out. */
import type { Order, OrderEvent } from "../orders/model.ts";
import type { RealtimeStatus, Session } from "./props.ts";
import { StatusBanner, TimelineEntry } from "./fragments.tsx";
import { orderSummary, STATUS_LABEL } from "./format.ts";
import { Layout } from "./layout.tsx";
import { OrderRow } from "./order_row.tsx";

/** Symbols the ticket suggests, with their asset class (the simulator knows these). */
export const KNOWN_SYMBOLS: ReadonlyArray<[string, string]> = [
  ["AAPL", "stock"],
  ["MSFT", "stock"],
  ["TSLA", "stock"],
  ["NVDA", "stock"],
  ["SPY", "etf"],
  ["VOO", "etf"],
  ["QQQ", "etf"],
  ["VFIAX", "mutual_fund"],
  ["FXAIX", "mutual_fund"],
  ["BTC-USD", "crypto"],
  ["ETH-USD", "crypto"],
  ["SOL-USD", "crypto"],
];

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
export type Tab = typeof TABS[number][0];

/** The order ticket: controls carry the API's field names. */
function Ticket(props: { error?: string }) {
  return (
    <form id="order-ticket" method="post" action="/orders" hx-post="/orders" hx-swap="none">
      <h2>New order</h2>
      <label>
        Symbol
        <input
          name="symbol"
          list="symbols"
          required
          maxlength={16}
          autocomplete="off"
          placeholder="AAPL"
        />
      </label>
      <datalist id="symbols">
        {KNOWN_SYMBOLS.map(([s, c]) => (
          <option value={s} data-asset-class={c}>{c.replace("_", " ")}</option>
        ))}
      </datalist>
      <label>
        Asset class
        <select name="asset_class">
          <option value="stock" selected>Stock</option>
          <option value="etf">ETF</option>
          <option value="mutual_fund">Mutual fund</option>
          <option value="crypto">Crypto</option>
        </select>
      </label>
      <fieldset class="side">
        <legend>Side</legend>
        <label>
          <input type="radio" name="side" value="buy" checked /> Buy
        </label>
        <label>
          <input type="radio" name="side" value="sell" /> Sell
        </label>
      </fieldset>
      <label>
        Type
        <select name="type">
          <option value="market" selected>Market</option>
          <option value="limit">Limit</option>
          <option value="stop">Stop</option>
          <option value="stop_limit">Stop limit</option>
        </select>
      </label>
      <label class="field-qty">
        Quantity <input name="qty" inputmode="decimal" autocomplete="off" placeholder="10" />
      </label>
      <label class="field-notional">
        or amount ($){" "}
        <input name="notional" inputmode="decimal" autocomplete="off" placeholder="250.00" />
      </label>
      <label class="field-limit" hidden>
        Limit price <input name="limit_price" inputmode="decimal" autocomplete="off" />
      </label>
      <label class="field-stop" hidden>
        Stop price <input name="stop_price" inputmode="decimal" autocomplete="off" />
      </label>
      <label>
        Time in force
        <select name="time_in_force">
          <option value="day" selected>Day</option>
          <option value="gtc">Good till canceled</option>
          <option value="ioc">Immediate or cancel</option>
          <option value="fok">Fill or kill</option>
        </select>
      </label>
      <p id="ticket-error" class="error" role="alert">{props.error ?? ""}</p>
      <button type="submit">Place order</button>
    </form>
  );
}

/** The row that loads the next page when it scrolls into view (infinite scroll). */
export function MoreRow(props: { tab: Tab; cursor: string }) {
  const url = `/orders/rows?tab=${props.tab}&cursor=${encodeURIComponent(props.cursor)}`;
  return (
    <tr id="more-orders" class="more" hx-get={url} hx-trigger="intersect once" hx-swap="outerHTML">
      <td colspan={6}>
        <a href={`/orders?tab=${props.tab}&cursor=${encodeURIComponent(props.cursor)}`}>More…</a>
      </td>
    </tr>
  );
}

/** The blotter: ticket, tabs, rows, and the live stream from the seq the rows were read at. */
export function BlotterPage(props: {
  user: string;
  orders: Order[];
  nextCursor: string | null;
  seq: number;
  tab: Tab;
  status: RealtimeStatus;
  error?: string;
}) {
  return (
    <Layout title="Orders" user={props.user}>
      <div
        id="live"
        hx-sse:connect={`/stream?last_event_id=${props.seq}`}
        data-seq={props.seq}
      >
      </div>
      <StatusBanner status={props.status} />
      <div class="blotter">
        <Ticket error={props.error} />
        <section class="orders">
          <nav class="tabs" role="tablist">
            {TABS.map(([key, label]) => (
              <a
                href={`/orders?tab=${key}`}
                role="tab"
                aria-selected={String(key === props.tab)}
                class={key === props.tab ? "tab active" : "tab"}
                data-tab={key}
              >
                {label}
              </a>
            ))}
          </nav>
          <table id="orders" data-tab={props.tab}>
            <thead>
              <tr>
                <th>Symbol</th>
                <th>Order</th>
                <th>Status</th>
                <th>Filled</th>
                <th>When</th>
                <th></th>
              </tr>
            </thead>
            <tbody id="orders-body">
              {props.orders.map((o) => <OrderRow key={o.id} order={o} />)}
              {props.nextCursor ? <MoreRow tab={props.tab} cursor={props.nextCursor} /> : null}
            </tbody>
          </table>
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
  seq: number;
  status: RealtimeStatus;
}) {
  const o = props.order;
  return (
    <Layout title={`${o.symbol} order`} user={props.user}>
      <div id="live" hx-sse:connect={`/stream?last_event_id=${props.seq}`} data-seq={props.seq}>
      </div>
      <StatusBanner status={props.status} />
      <section class="order-page">
        <h1>{orderSummary(o)}</h1>
        <p>
          Status: {STATUS_LABEL[o.status]} · id <code>{o.id}</code>
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
        <table id="orders">
          <tbody id="orders-body-single">
            <OrderRow order={o} />
          </tbody>
        </table>
        <h2>Timeline</h2>
        <ol id={`timeline-${o.id}`} class="timeline">
          {props.events.map((e) => <TimelineEntry key={e.seq} event={e} />)}
        </ol>
      </section>
    </Layout>
  );
}

/** This user's device sessions; revoke one, or all others. */
export function DevicesPage(props: { user: string; sessions: Session[]; current: string }) {
  return (
    <Layout title="Devices" user={props.user}>
      <section class="devices">
        <h1>Signed-in devices</h1>
        <ul>
          {props.sessions.map((s) => (
            <li data-session-id={s.id} class={s.id === props.current ? "current" : ""}>
              <strong>{s.label}</strong>
              <span>
                signed in <time datetime={s.created_at} data-verb="">{s.created_at}</time>
              </span>
              <span>
                · last seen <time datetime={s.last_seen_at} data-verb="">{s.last_seen_at}</time>
              </span>
              {s.id === props.current
                ? <em>(this device)</em>
                : (
                  <form method="post" action={`/devices/${s.id}/revoke`}>
                    <button type="submit">Sign out</button>
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
