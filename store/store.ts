/**
 * The store interface: where orders, their event log, sessions, push subscriptions and settings are
 * kept; Deno KV (kv/, the embedded default) and Postgres (pg/) pass one contract suite.
 *
 * The event log, numbered per user by `seq` (1, 2, 3, … no gaps, in commit order), is the truth;
 * everything downstream (hub, streams, push) can be rebuilt from `eventsSince`.
 */
import type {
  ExecutionReport,
  Order,
  OrderEvent,
  OrderRequest,
  ReplaceRequest,
  UserEvent,
} from "../orders/model.ts";
import type { ChangeSource } from "./change_listeners.ts";

/** Who hears what a store commits: defined with their registry (change_listeners.ts). */
export type { ChangeListener, ChangeSource } from "./change_listeners.ts";

/** The result of a write that produced events (an order action or an applied report). */
export interface WriteResult {
  /** The user the order belongs to. */
  user_id: string;
  /** The primary order's snapshot after the write (for a duplicate: the first result's). */
  order: Order;
  /** The events this write appended, in seq order (for a duplicate: the first result's). */
  events: OrderEvent[];
}

/** What `placeOrder` answers: `created` is false when the client_order_id was seen before. */
export interface PlaceResult extends WriteResult {
  created: boolean;
}

/** What `applyReport` answers: a duplicate exec_id writes nothing and returns the first result. */
export interface ApplyResult extends WriteResult {
  duplicate: boolean;
}

/** Which orders a list shows. */
export type StatusFilter = "open" | "closed" | "all";

/** One page of orders, newest first; `next_cursor` is opaque, null on the last page. */
export interface OrderPage {
  orders: Order[];
  next_cursor: string | null;
  /**
   * The user's newest seq read together with these rows (0: no event yet): every event up to it
   * is reflected in them, none after — so a client opens its stream from exactly here.
   */
  last_seq: number;
}

/** A device's session (dev-mode login, or a JWT `sid` seen for the first time). */
export interface Session {
  id: string;
  user_id: string;
  /** Human label for the devices page, e.g. "Chrome on macOS". */
  label: string;
  created_at: string;
  last_seen_at: string;
  revoked_at: string | null;
}

/** A browser's Web Push subscription, tied to the device session that made it. */
export interface PushSubscriptionRecord {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  user_id: string;
  session_id: string;
  created_at: string;
}

/** Orders: the user's actions, the venue's reports, and the reads of snapshots. */
export interface OrderStore {
  /**
   * Places an order in `pending_new` and appends its `pending_new` event. With a client_order_id
   * this user already used, writes nothing and returns that order (`created: false`).
   */
  placeOrder(userId: string, request: OrderRequest, now: Date): Promise<PlaceResult>;
  /** Asks to cancel: `pending_cancel`. Throws AppError not_found (404) or conflict (409, final). */
  requestCancel(userId: string, orderId: string, now: Date): Promise<WriteResult>;
  /** Asks to replace: `pending_replace`. Throws AppError not_found, conflict or invalid_request. */
  requestReplace(
    userId: string,
    orderId: string,
    changes: ReplaceRequest,
    now: Date,
  ): Promise<WriteResult>;
  /**
   * Applies a venue's report in one atomic step: snapshot(s) + event(s) with the user's next
   * seq(s). A repeated exec_id writes nothing and returns the first result (`duplicate: true`).
   * Throws AppError not_found (unknown order) or illegal_transition (409) and then writes nothing.
   */
  applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult>;
  /** One order of this user, or null (also when it belongs to someone else). */
  getOrder(userId: string, orderId: string): Promise<Order | null>;
  /** This user's orders, newest first (UUIDv7 order), filtered by status, at most `limit`. */
  listOrders(
    userId: string,
    options: { status: StatusFilter; limit: number; cursor?: string | null },
  ): Promise<OrderPage>;
  /** Every event of one order of this user, oldest first ([] when not theirs or unknown). */
  orderEvents(userId: string, orderId: string): Promise<OrderEvent[]>;
  /** Orders of any user that are not final, oldest first: the simulator resumes them on start. */
  workingOrders(limit: number): Promise<Array<{ user_id: string; order: Order }>>;
  /** The owner of an order, or null: the venue reports by order id alone. */
  orderOwner(orderId: string): Promise<string | null>;
}

/** The per-user event log, numbered by seq: what streams replay and catch up from. */
export interface EventLog {
  /** The user's events with seq > `afterSeq`, ascending, at most `limit`. */
  eventsSince(userId: string, afterSeq: number, limit: number): Promise<OrderEvent[]>;
  /**
   * The same for many users at once (one query on Postgres): catch-up after the change feed
   * reconnects. Returns events grouped in per-user seq order; at most `limitPerUser` per user.
   */
  eventsSinceMany(
    positions: ReadonlyArray<{ user_id: string; after_seq: number }>,
    limitPerUser: number,
  ): Promise<UserEvent[]>;
  /** The user's latest seq (0 before their first event). */
  currentSeq(userId: string): Promise<number>;
  /** The smallest seq still kept for this user (events before it were pruned), or null if none. */
  oldestSeq(userId: string): Promise<number | null>;
  /** Deletes events older than `before` (retention), never a user's latest; returns how many. */
  pruneEvents(before: Date): Promise<number>;
}

/** Device sessions: sign-in, the devices page, sign-out. */
export interface SessionStore {
  /** Stores a new session with the SHA-256 hash (hex) of its bearer token. */
  createSession(
    session: Omit<Session, "revoked_at" | "last_seen_at">,
    tokenHash: string,
  ): Promise<Session>;
  /** The session for a token hash, or null (revoked ones are returned with revoked_at set). */
  sessionByTokenHash(tokenHash: string): Promise<Session | null>;
  /** One session by id, or null. */
  getSession(sessionId: string): Promise<Session | null>;
  /** Ensures a session exists with this id (JWT mode: the auth service's `sid`). */
  ensureSession(session: Omit<Session, "revoked_at" | "last_seen_at">): Promise<Session>;
  /** Updates last_seen_at (callers throttle this; it is not on every request). */
  touchSession(sessionId: string, now: Date): Promise<void>;
  /** Of these sessions, those revoked (streams re-checked after the change feed missed news). */
  revokedAmong(sessionIds: string[]): Promise<string[]>;
  /** This user's sessions that are not revoked, newest first. */
  listSessions(userId: string): Promise<Session[]>;
  /**
   * Revokes a session of this user (null userId: any user's, for the auth service) and removes
   * its push subscriptions; notifies the change feed. Returns false if there was none.
   */
  revokeSession(userId: string | null, sessionId: string, now: Date): Promise<boolean>;
}

/** Browsers' Web Push subscriptions: whom to alert. */
export interface PushSubscriptionStore {
  /** Adds or replaces (by endpoint) a push subscription. */
  addPushSubscription(sub: PushSubscriptionRecord): Promise<void>;
  /** Removes this user's subscription with that endpoint; false if there was none. */
  removePushSubscription(userId: string, endpoint: string): Promise<boolean>;
  /** Removes a subscription by endpoint whoever owns it (the push service said 404/410). */
  removePushSubscriptionByEndpoint(endpoint: string): Promise<void>;
  /** This user's subscriptions. */
  listPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]>;
}

/** A native app's push token (FCM or APNs), tied to the device session that registered it. */
export interface PushDeviceRecord {
  /** The platform's device token: at most 4,096 characters of [A-Za-z0-9_:.-]. */
  token: string;
  platform: "fcm" | "apns";
  user_id: string;
  session_id: string;
  created_at: string;
}

/**
 * What registering a token did: `created` (new), `unchanged` (this session had it already),
 * `moved` (another session or user had it; it is this session's now).
 */
export type PushDeviceResult = "created" | "unchanged" | "moved";

/**
 * Native push tokens, a role of the store: the routes and the dispatcher take only this much.
 * Like Web Push subscriptions, a token is deleted with its session (revokeSession), and every
 * change is heard by every instance's alert-target cache.
 */
export interface PushDeviceStore {
  /**
   * Registers a token for its session. A token is one row: registered again by another session
   * or user, it moves there (its row locked while it moves, so two racing moves end in one).
   */
  addPushDevice(device: PushDeviceRecord): Promise<PushDeviceResult>;
  /** Removes this user's token; false if this user had none such. */
  removePushDevice(userId: string, token: string): Promise<boolean>;
  /** Removes a token whoever holds it (the push service said it is dead). */
  removePushDeviceByToken(token: string): Promise<void>;
  /** This user's tokens on sessions that are not revoked, oldest first. */
  listPushDevices(userId: string): Promise<PushDeviceRecord[]>;
}

/** Once-only alerts across every instance that shares the store. */
export interface AlertClaims {
  /**
   * Claims the alert for one event: true for exactly one caller across every instance sharing
   * the store, so N instances that all hear an event send its alerts once, not N times.
   */
  claimAlert(userId: string, seq: number, now: Date): Promise<boolean>;
}

/** Small values kept once per installation (e.g. the generated VAPID keys). */
export interface SettingsStore {
  /** A stored setting, or null. */
  getSetting(key: string): Promise<string | null>;
  /** Stores the value unless the key exists; returns whichever value is stored (first wins). */
  setSettingIfAbsent(key: string, value: string): Promise<string>;
}

/** The part of a store that tells what it commits (realtime/feed.ts and the venue listen). */
export interface Changes {
  /** Who hears this store's commits (KV: in-process; Postgres: LISTEN/NOTIFY or the NATS bus). */
  readonly changes: ChangeSource;
}

/** What /readyz and the logs ask of a store. */
export interface Health {
  /** Which backend this is, for logs and /readyz. */
  readonly kind: "kv" | "postgres";
  /** Whether the store answers right now (for /readyz). */
  ping(): Promise<boolean>;
  /**
   * Why writes are refused right now (its disk is full), or null while they go through; while a
   * problem stands, asking tries a small write, so the answer comes back by itself (/readyz).
   */
  unwritable(): Promise<string | null>;
  /** Writes refused because the disk was full, since start (/metrics). */
  readonly writesRefusedDiskFull: number;
  /** Report groups that could not go their first way since start, by why (/metrics; common.ts). */
  reportFallbacks(): ReadonlyMap<string, number>;
  /** The event bus (EVENT_BUS_URL) as /readyz and /metrics see it; null without one. */
  bus(): BusStatus | null;
}

/**
 * The event bus: its state, the users subscribed to, messages published and received, and other
 * instances' batches of written users heard (ids only, for the state cache).
 */
export interface BusStatus {
  state: "connecting" | "connected" | "down";
  subscriptions: number;
  published: number;
  received: number;
  writtenHeard: number;
}

/**
 * Everything Blotter keeps: every role above, implemented by one object per backend. Consumers
 * name the roles they use instead of taking all of it. All methods are safe to call concurrently.
 */
export interface Store
  extends
    OrderStore,
    EventLog,
    SessionStore,
    PushSubscriptionStore,
    PushDeviceStore,
    AlertClaims,
    SettingsStore,
    Changes,
    Health {
  /** Releases connections; further calls fail. */
  close(): Promise<void>;
}
