/**
 * The order domain's shapes, exactly as ../shared/CONTRACT.md gives them: zod schemas for what
 * crosses an edge (order requests, execution reports) and the types of what we keep and send
 * (Order, OrderEvent). Decimals are strings everywhere here; arithmetic lives in decimal.ts.
 */
import { z } from "zod";

export const ASSET_CLASSES = ["stock", "etf", "mutual_fund", "crypto"] as const;
export const SIDES = ["buy", "sell"] as const;
export const ORDER_TYPES = ["market", "limit", "stop", "stop_limit"] as const;
export const TIMES_IN_FORCE = ["day", "gtc", "ioc", "fok"] as const;
export const ORDER_STATUSES = [
  "pending_new",
  "new",
  "partially_filled",
  "filled",
  "pending_cancel",
  "canceled",
  "pending_replace",
  "replaced",
  "rejected",
  "expired",
] as const;
export const EVENT_TYPES = [
  "pending_new",
  "new",
  "partial_fill",
  "fill",
  "pending_cancel",
  "canceled",
  "pending_replace",
  "replaced",
  "rejected",
  "expired",
  "order_cancel_rejected",
  "order_replace_rejected",
] as const;

export type AssetClass = typeof ASSET_CLASSES[number];
export type Side = typeof SIDES[number];
export type OrderType = typeof ORDER_TYPES[number];
export type TimeInForce = typeof TIMES_IN_FORCE[number];
export type OrderStatus = typeof ORDER_STATUSES[number];
export type EventType = typeof EVENT_TYPES[number];

/**
 * Events worth interrupting a trader for: a toast on an open page, a push alert (Web Push, FCM,
 * APNs) to a device without an open stream. One list, so the screen and the phone agree.
 */
export const ALERT_EVENT_TYPES: ReadonlySet<string> = new Set<EventType>([
  "partial_fill",
  "fill",
  "rejected",
  "canceled",
  "expired",
]);

/** Statuses after which no report changes the order. */
export const FINAL_STATUSES: ReadonlySet<OrderStatus> = new Set([
  "filled",
  "canceled",
  "rejected",
  "expired",
  "replaced",
]);

/** Whether an order in this status can still change. */
export function isFinal(status: OrderStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/** Statuses the `open` filter lists. */
export const OPEN_STATUSES: ReadonlySet<OrderStatus> = new Set(
  ORDER_STATUSES.filter((s) => !FINAL_STATUSES.has(s)),
);

/** Largest number of decimal places a quantity may carry (crypto goes to 1e-9). */
export const QTY_PLACES = 9;
/** Largest number of decimal places a price may carry. */
export const PRICE_PLACES = 8;

/**
 * A strict, positive decimal string: digits, an optional point and up to `places` decimals; no
 * sign, no exponent, no leading zeros, at most 15 integer digits. Zero is refused.
 */
function positiveDecimal(field: string, places: number) {
  const pattern = new RegExp(`^(?:0|[1-9][0-9]{0,14})(?:\\.[0-9]{1,${places}})?$`);
  return z.string({ error: `${field} must be a decimal string such as "10" or "0.5"` })
    .max(32, `${field} is too long`)
    .regex(
      pattern,
      `${field} must be a positive decimal string with at most ${places} decimal places`,
    )
    .refine((v) => NONZERO.test(v), `${field} must be greater than zero`);
}

/** A digit other than 0: a decimal string that has one is not zero. */
const NONZERO = /[1-9]/;

/** A quantity: positive, at most 9 decimal places. */
export const QtyString = positiveDecimal("qty", QTY_PLACES);
/** A notional (cash) amount: positive, at most 2 decimal places like the currency it is in. */
export const NotionalString = positiveDecimal("notional", 2);
/** A price: positive, at most 8 decimal places. */
export const PriceString = positiveDecimal("price", PRICE_PLACES);

/** A ticker such as AAPL, BRK.B or BTC-USD; upper-cased on the way in. */
export const SymbolString = z.string({ error: "symbol must be a string" })
  .trim()
  .toUpperCase()
  .regex(
    /^[A-Z0-9]{1,10}(?:[.\-/][A-Z0-9]{1,10})?$/,
    "symbol must be 1 to 10 letters or digits, optionally with one . - or / part (e.g. BTC-USD)",
  );

/** An order id: a UUID (we issue version 7). */
export const OrderId = z.uuid({ error: "order id must be a UUID" });

/** A client's own idempotency key for an order: printable ASCII, at most 64 characters. */
export const ClientOrderId = z.string()
  .min(1)
  .max(64, "client_order_id must be at most 64 characters")
  .regex(/^[\x21-\x7e]+$/, "client_order_id must be printable ASCII without spaces");

/** Free text from a venue (reject reasons). Stored and returned as given; escaped in HTML. */
export const ReasonString = z.string().max(500, "reason must be at most 500 characters");

/** RFC 3339 timestamps as venues send them; normalised to UTC with milliseconds. */
export const Timestamp = z.iso.datetime({ offset: true, error: "at must be an RFC 3339 time" })
  .transform((s) => new Date(s).toISOString());

/** What a user sends to place an order (POST /api/v1/orders and the order ticket). */
export const OrderRequest = z.strictObject({
  symbol: SymbolString,
  asset_class: z.enum(ASSET_CLASSES),
  side: z.enum(SIDES),
  type: z.enum(ORDER_TYPES).default("market"),
  time_in_force: z.enum(TIMES_IN_FORCE).optional(),
  qty: QtyString.nullish(),
  notional: NotionalString.nullish(),
  limit_price: PriceString.nullish(),
  stop_price: PriceString.nullish(),
  client_order_id: ClientOrderId.nullish(),
}).superRefine((o, ctx) => {
  const hasQty = o.qty != null, hasNotional = o.notional != null;
  if (hasQty === hasNotional) {
    ctx.addIssue({
      code: "custom",
      path: ["qty"],
      message: "give exactly one of qty or notional",
    });
  }
  if (hasNotional && o.type !== "market") {
    ctx.addIssue({
      code: "custom",
      path: ["notional"],
      message: "notional orders must be market orders",
    });
  }
  const needsLimit = o.type === "limit" || o.type === "stop_limit";
  const needsStop = o.type === "stop" || o.type === "stop_limit";
  if (needsLimit !== (o.limit_price != null)) {
    ctx.addIssue({
      code: "custom",
      path: ["limit_price"],
      message: needsLimit
        ? `limit_price is required for ${o.type} orders`
        : `limit_price is only allowed for limit and stop_limit orders`,
    });
  }
  if (needsStop !== (o.stop_price != null)) {
    ctx.addIssue({
      code: "custom",
      path: ["stop_price"],
      message: needsStop
        ? `stop_price is required for ${o.type} orders`
        : `stop_price is only allowed for stop and stop_limit orders`,
    });
  }
}).transform((o) => ({
  symbol: o.symbol,
  asset_class: o.asset_class,
  side: o.side,
  type: o.type,
  // Crypto trades around the clock, so it has no trading day to end with (CONTRACT: gtc default).
  time_in_force: o.time_in_force ?? (o.asset_class === "crypto" ? "gtc" : "day"),
  qty: o.qty ?? null,
  notional: o.notional ?? null,
  limit_price: o.limit_price ?? null,
  stop_price: o.stop_price ?? null,
  client_order_id: o.client_order_id ?? null,
} as const));
export type OrderRequest = z.output<typeof OrderRequest>;

/** What a user sends to change a working order (PATCH /api/v1/orders/:id). */
export const ReplaceRequest = z.strictObject({
  qty: QtyString.optional(),
  limit_price: PriceString.optional(),
}).refine((r) => r.qty !== undefined || r.limit_price !== undefined, {
  message: "give qty, limit_price or both",
});
export type ReplaceRequest = z.output<typeof ReplaceRequest>;

/** A venue's report about one order (POST /api/v1/executions and the simulator). */
export const ExecutionReport = z.strictObject({
  order_id: OrderId,
  exec_id: z.string().min(1).max(128).regex(
    /^[\x21-\x7e]+$/,
    "exec_id must be printable ASCII without spaces",
  ),
  type: z.enum(EVENT_TYPES, {
    error: `type must be one of ${EVENT_TYPES.join(", ")}`,
  }),
  at: Timestamp,
  last_qty: QtyString.optional(),
  last_price: PriceString.optional(),
  reason: ReasonString.optional(),
  qty: QtyString.optional(),
  limit_price: PriceString.optional(),
}).superRefine((r, ctx) => {
  if (r.type === "partial_fill" || r.type === "fill") {
    if (r.last_qty === undefined) {
      ctx.addIssue({ code: "custom", path: ["last_qty"], message: `${r.type} needs last_qty` });
    }
    if (r.last_price === undefined) {
      ctx.addIssue({ code: "custom", path: ["last_price"], message: `${r.type} needs last_price` });
    }
  }
});
export type ExecutionReport = z.output<typeof ExecutionReport>;

/** The snapshot of one order: its latest state (what the API answers; documented in OpenAPI). */
export const OrderSchema = z.object({
  id: z.string(),
  client_order_id: z.string().nullable(),
  symbol: z.string(),
  asset_class: z.enum(ASSET_CLASSES),
  side: z.enum(SIDES),
  type: z.enum(ORDER_TYPES),
  time_in_force: z.enum(TIMES_IN_FORCE),
  qty: z.string().nullable(),
  notional: z.string().nullable(),
  limit_price: z.string().nullable(),
  stop_price: z.string().nullable(),
  status: z.enum(ORDER_STATUSES),
  filled_qty: z.string(),
  filled_avg_price: z.string().nullable(),
  /** Exact sum of qty x price over all fills; keeps the average exact across many fills. */
  filled_notional: z.string(),
  reject_reason: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  filled_at: z.string().nullable(),
  canceled_at: z.string().nullable(),
  /** Alpaca's names: the order this one replaced, and the order that replaced this one. */
  replaces: z.string().nullable(),
  replaced_by: z.string().nullable(),
});
/** The snapshot of one order. */
export type Order = z.infer<typeof OrderSchema>;

/** One fill as a venue reported it (values echoed as given). */
export const ExecutionSchema = z.object({
  id: z.string(),
  qty: z.string(),
  price: z.string(),
  at: z.string(),
});
/** One fill as a venue reported it. */
export type Execution = z.infer<typeof ExecutionSchema>;

/** One applied report or order action for one user, numbered by the user's seq. */
export const OrderEventSchema = z.object({
  /** `SEQ.TAG`: the seq and random bits fixed at commit (event_id.ts); the SSE `id:`. */
  id: z.string(),
  seq: z.number().int().positive(),
  type: z.enum(EVENT_TYPES),
  at: z.string(),
  order: OrderSchema,
  execution: ExecutionSchema.optional(),
  reason: z.string().optional(),
  /** For `pending_replace`: the changes asked for, so the venue knows what to confirm. */
  requested: z.object({ qty: z.string().optional(), limit_price: z.string().optional() })
    .optional(),
});
/** One applied report or order action for one user. */
export type OrderEvent = z.infer<typeof OrderEventSchema>;

/** An event with the user it belongs to, as it travels from the store to the hub. */
export interface UserEvent {
  user_id: string;
  event: OrderEvent;
}
