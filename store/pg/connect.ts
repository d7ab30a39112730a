/**
 * Connecting to Postgres and the schema: opens the query pool, applies ../schema.sql under an
 * advisory lock, and holds what every other module of the Postgres store shares (`PgContext`).
 * Also the one place that tells "the database is away" (a 503) from a query's own failure.
 */
import postgres from "postgres";
import type { Logger } from "../../log.ts";
import { AppError } from "../../orders/errors.ts";
import { ChangeListeners } from "../change_listeners.ts";
import type { OrderEvent } from "../../orders/model.ts";
import type { PushDeviceRecord, PushSubscriptionRecord } from "../store.ts";
import { SubscriptionCache } from "../subscription_cache.ts";
import { StateCache } from "./state_cache.ts";

/** One alert target of a user: a browser's subscription or a native app's token. */
export type AlertTarget = PushSubscriptionRecord | PushDeviceRecord;

/** A postgres.js pool. */
export type Sql = postgres.Sql;
/** A postgres.js transaction handle. */
export type Tx = postgres.TransactionSql;

/** NOTIFY payloads must stay under 8000 bytes; above this, send ids and let listeners fetch. */
const MAX_PAYLOAD = 7_999;

/** What every instance is told on the bus (notices.ts has every kind of notice). */
export type Broadcast =
  | { k: "revoke"; u: string; s: string }
  | { k: "subs"; u: string }
  | { k: "resync" };

/** The event bus as the write paths use it (bus.ts, when EVENT_BUS_URL is set). */
export interface EventBus {
  /** Publishes one user's committed events to the instances that serve the user. */
  publishEvents(userId: string, events: OrderEvent[]): void;
  /** Tells every instance. */
  broadcast(notice: Broadcast): void;
}

/** Options for the Postgres store. */
export interface PgStoreOptions {
  log: Logger;
  /** The schema to use (tests use a fresh one per run); created if missing. Default `public`. */
  schema?: string;
  /** Pool size for queries (the listener has its own connection). */
  max?: number;
  /** Payloads above this many bytes go as ids only (tests lower it to exercise that path). */
  maxNotifyBytes?: number;
  /** WRITE_QUEUE_LIMIT: reports and order actions waiting to be written at once. */
  writeQueueLimit?: number;
  /** How many users the state cache keeps (default STATE_CACHE_USERS). */
  cacheUsers?: number;
  /** EVENT_BUS_URL: instances exchange events over NATS (bus.ts) instead of NOTIFY. */
  eventBusUrl?: string | null;
  /** Called with every statement sent on the pool or a writer (tests count round trips). */
  onQuery?: (query: string) => void;
}

/** What the modules of the Postgres store share: the pool, where to connect, the channels. */
export interface PgContext {
  /** The query pool (reads, sessions, subscriptions, the inbox). */
  readonly sql: Sql;
  readonly url: string;
  /** Connection parameters every connection of this store uses (search_path = the schema). */
  readonly connection: Record<string, string>;
  readonly log: Logger;
  /** postgres.js's `debug` hook for every connection but the listener's (PgStoreOptions.onQuery). */
  readonly debug?: (connection: number, query: string) => void;
  /** The NOTIFY channel of order events, revokes and subscription changes. */
  readonly channel: string;
  /** The NOTIFY channel that wakes the inbox drain. */
  readonly inboxChannel: string;
  readonly maxNotifyBytes: number;
  /** Who hears what is committed; connected while the LISTEN connection is up (listener.ts). */
  readonly changes: ChangeListeners;
  /**
   * Whom to alert, per user (asked on every fill): browser subscriptions and native push tokens
   * together, loaded together; forgotten on NOTIFY `subs` (a change to either) and `revoke`.
   */
  readonly subs: SubscriptionCache<AlertTarget>;
  /** Recent users' seqs and order snapshots (a hint the fast write checks); see state_cache.ts. */
  readonly cache: StateCache;
  /**
   * This instance's prefix on the event NOTIFYs it sends (`id|`): its own listener skips them
   * before parsing, having handed the events to its listeners at commit.
   */
  readonly instance: string;
  /**
   * The event bus when EVENT_BUS_URL is set (then no write NOTIFYs: events, revokes and
   * alert-target changes travel on the bus), else null.
   */
  bus: EventBus | null;
  /** Set once by close(): loops (reconnect, inbox drain) stop. */
  closed: boolean;
}

/** Connects the query pool, creates the schema if needed and applies schema.sql. */
export async function connect(url: string, options: PgStoreOptions): Promise<PgContext> {
  const schema = options.schema ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const connection = { search_path: schema, application_name: "blotter" };
  const onQuery = options.onQuery;
  const debug = onQuery ? (_: number, query: string) => onQuery(query) : undefined;
  const sql = postgres(url, {
    ...serverChoice(url),
    max: options.max ?? 10,
    connection,
    onnotice: () => {},
    // Fail fast when the database is away: callers answer 503 and clients retry.
    connect_timeout: 5,
    debug,
  });
  try {
    await sql.unsafe(`create schema if not exists "${schema}"`);
    const ddl = await Deno.readTextFile(new URL("../schema.sql", import.meta.url));
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('blotter_schema'))`;
      await tx.unsafe(ddl);
    });
  } catch (err) {
    // A start that fails (the database not up yet) is tried again: leave no pool behind.
    await sql.end({ timeout: 0 }).catch(() => {});
    throw err;
  }
  return {
    sql,
    url,
    connection,
    log: options.log,
    debug,
    channel: `blotter:${schema}`,
    inboxChannel: `blotter_inbox:${schema}`,
    maxNotifyBytes: options.maxNotifyBytes ?? MAX_PAYLOAD,
    changes: new ChangeListeners(options.log, {
      connected: false,
      connecting: options.eventBusUrl
        ? "the event bus is connecting"
        : "the database change feed is connecting",
    }),
    subs: new SubscriptionCache<AlertTarget>(),
    cache: new StateCache(options.cacheUsers),
    instance: `${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}|`,
    bus: null,
    closed: false,
  };
}

/**
 * Which server of a multi-host `DATABASE_URL` a connection may settle on, for every connection of
 * the store (pool, writers, listener). libpq's `target_session_attrs=read-write` means "a server
 * that takes writes"; postgres.js 3.4.9 checks it against `default_transaction_read_only` alone,
 * which a hot standby reports as `off` though it refuses every write — asked for `read-write`, it
 * settled on the standby (seen in the failover drill). Its `primary` asks `in_hot_standby`, which
 * is what `read-write` means for a primary and its standbys.
 */
export function serverChoice(url: string): { target_session_attrs?: "primary" } {
  const query = url.split("?")[1] ?? "";
  return new URLSearchParams(query).get("target_session_attrs") === "read-write"
    ? { target_session_attrs: "primary" }
    : {};
}

/** Runs one query on the pool; "the database is away" becomes a 503. */
export async function query<T>(ctx: PgContext, run: (sql: Sql) => Promise<T>): Promise<T> {
  try {
    return await run(ctx.sql);
  } catch (err) {
    throw unavailableIfConnection(err);
  }
}

/** Turns "the database is away" into a 503 the API can answer; other errors pass through. */
export function unavailableIfConnection(err: unknown): unknown {
  if (isConnectionError(err)) {
    return new AppError("unavailable", "The database is unavailable; try again shortly");
  }
  return err;
}

/**
 * Whether a failure to open the store means "the database is not there yet" (refused, starting
 * up, its name not yet in DNS while a compose stack comes up): worth waiting for. Anything else —
 * a wrong password, a missing database — will not mend itself and stops the start.
 */
export function isNotUpYet(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return isConnectionError(err) ||
    /^(ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)$/.test(code);
}

/** Whether `err` says the connection or the server went away (not a query's own failure). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return /^(ECONNREFUSED|ECONNRESET|CONNECT_TIMEOUT|CONNECTION_|EPIPE)/.test(code) ||
    /^(08|57P)/.test(code);
}
