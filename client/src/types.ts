/**
 * The shapes the client library speaks (CONTRACT: OrderEvent, Order, the options and states).
 * Money and quantities stay decimal strings, exactly as the server sent them.
 */

/** One order's latest state. */
export interface Order {
  id: string;
  client_order_id: string | null;
  symbol: string;
  asset_class: "stock" | "etf" | "mutual_fund" | "crypto";
  side: "buy" | "sell";
  type: string;
  time_in_force: string;
  qty: string | null;
  notional: string | null;
  limit_price: string | null;
  stop_price: string | null;
  status: string;
  filled_qty: string;
  filled_avg_price: string | null;
  created_at: string;
  updated_at: string;
  [field: string]: unknown;
}

/** One change of one order, numbered by the user's seq; `id` is `SEQ.TAG`. */
export interface OrderEvent {
  id: string;
  seq: number;
  type: string;
  at: string;
  order: Order;
  [field: string]: unknown;
}

/** A new order, as `POST /api/v1/orders` takes it. */
export interface OrderRequest {
  symbol: string;
  asset_class: Order["asset_class"];
  side: Order["side"];
  type?: string;
  time_in_force?: string;
  qty?: string;
  notional?: string;
  limit_price?: string;
  stop_price?: string;
  /** Makes the call idempotent; the library makes one when it is not given. */
  client_order_id?: string;
}

/** The connection's state, as the UI should say it. */
export type ClientState =
  | "connecting"
  | "live"
  | "reconnecting"
  | "polling"
  | "offline"
  | "paused"
  | "closed";

/** Why the view was loaded afresh. */
export type ReloadReason = "start" | "reset" | "gap" | "history";

/** What a client tells: state changes, view changes (`event` null for a reload or a poll), reloads. */
export type Listeners = {
  state: (state: ClientState) => void;
  order: (order: Order, event: OrderEvent | null) => void;
  reload: (why: ReloadReason) => void;
};

/** Where the library keeps a small JSON value between runs (localStorage, AsyncStorage). */
export interface ClientStorage {
  get(): string | null | Promise<string | null>;
  set(value: string): void | Promise<void>;
}

/** What a client is made with. */
export interface ClientOptions {
  baseUrl: string;
  /** The bearer token, or a function asked on every connect and before the token expires. */
  token?: string | (() => string | Promise<string>);
  transport?: "auto" | "websocket" | "sse" | "polling";
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
  /** Keeps the last view, so a cold start shows it at once and resumes from it. */
  storage?: ClientStorage;
}

/** A refused call: its HTTP status, the API's error code and message, and when to retry. */
export class BlotterError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds to wait before trying again (a 429 or 503), when the server said. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = "BlotterError";
  }
}
