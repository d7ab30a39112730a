/**
 * The production store on Postgres (postgres.js). Every write is one short transaction that locks
 * the user's counter row, takes the next seq, updates the snapshot, appends the event and
 * `pg_notify`s it, so per user the order of seqs is the order of commits and every instance's
 * listener hears it right after commit.
 *
 * One dedicated LISTEN connection per process (not postgres.js's `listen()`, whose re-listen after
 * a failed reconnect gives up silently): when it drops, listeners are told `disconnected`, it
 * retries with backoff, and on success they are told `connected` and catch up from the log.
 *
 * It also drains `execution_inbox` (schema.sql), the plain-SQL way to feed reports: rows are
 * claimed with `for update skip locked`, validated and applied through `applyReport`, and answered.
 */
import postgres from "postgres";
import type { Logger } from "../log.ts";
import { AppError, errorBody } from "../orders/errors.ts";
import { uuidv7 } from "../orders/ids.ts";
import * as lifecycle from "../orders/lifecycle.ts";
import {
  ExecutionReport,
  isFinal,
  type Order,
  type OrderEvent,
  type OrderRequest,
  type ReplaceRequest,
  type UserEvent,
} from "../orders/model.ts";
import {
  acceptedOrThrow,
  decodeCursor,
  encodeCursor,
  eventsFromSteps,
  orderNotFound,
} from "./common.ts";
import type {
  ApplyResult,
  ChangeListener,
  ChangeSource,
  OrderPage,
  PlaceResult,
  PushSubscriptionRecord,
  Session,
  StatusFilter,
  Store,
  WriteResult,
} from "./store.ts";

type Sql = postgres.Sql;
type Tx = postgres.TransactionSql;

/** NOTIFY payloads must stay under 8000 bytes; above this, send ids and let listeners fetch. */
const MAX_PAYLOAD = 7_500;
/** Listener reconnect backoff, doubling from the first to the last. */
const RECONNECT_MS = [100, 250, 500, 1_000, 2_000];

/** Options for the Postgres store. */
export interface PgStoreOptions {
  log: Logger;
  /** The schema to use (tests use a fresh one per run); created if missing. Default `public`. */
  schema?: string;
  /** Pool size for queries (the listener has its own connection). */
  max?: number;
  /** Payloads above this many bytes go as ids only (tests lower it to exercise that path). */
  maxNotifyBytes?: number;
}

/** What travels on the NOTIFY channel. */
type Notice =
  | { k: "ev"; u: string; e: OrderEvent[] }
  | { k: "ids"; u: string; s: number[] }
  | { k: "revoke"; u: string; s: string };

/** Opens the Postgres store: connects, applies schema.sql, starts the listener. */
export async function openPgStore(url: string, options: PgStoreOptions): Promise<Store> {
  const schema = options.schema ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const connection = { search_path: schema, application_name: "blotter" };
  const sql = postgres(url, {
    max: options.max ?? 10,
    connection,
    onnotice: () => {},
    // Fail fast when the database is away: callers answer 503 and clients retry.
    connect_timeout: 5,
  });
  await sql.unsafe(`create schema if not exists "${schema}"`);
  const ddl = await Deno.readTextFile(new URL("./schema.sql", import.meta.url));
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('blotter_schema'))`;
    await tx.unsafe(ddl);
  });
  const store = new PgStore(sql, url, schema, options.log, connection, options.maxNotifyBytes);
  await store.startListening();
  return store;
}

/** Turns "the database is away" into a 503 the API can answer; other errors pass through. */
function unavailableIfConnection(err: unknown): unknown {
  const code = (err as { code?: string })?.code ?? "";
  if (
    /^(ECONNREFUSED|ECONNRESET|CONNECT_TIMEOUT|CONNECTION_|EPIPE)/.test(code) ||
    /^(08|57P)/.test(code)
  ) {
    return new AppError("unavailable", "The database is unavailable; try again shortly");
  }
  return err;
}

class PgChanges implements ChangeSource {
  connected = false;
  readonly listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    if (this.connected) listener.connected();
    else listener.disconnected("the database change feed is connecting");
    return () => this.listeners.delete(listener);
  }
}

class PgStore implements Store {
  readonly kind = "postgres" as const;
  readonly #sql: Sql;
  readonly #url: string;
  readonly #log: Logger;
  readonly #connection: Record<string, string>;
  readonly #channel: string;
  readonly #inboxChannel: string;
  readonly #changes = new PgChanges();
  readonly changes: ChangeSource = this.#changes;
  readonly #maxNotify: number;
  #listener: Sql | null = null;
  #closed = false;
  #reconnecting = false;
  /** Notifications are delivered in arrival order, even when one must first fetch its events. */
  #delivery: Promise<void> = Promise.resolve();
  #draining: Promise<void> | null = null;
  #drainAgain = false;

  constructor(
    sql: Sql,
    url: string,
    schema: string,
    log: Logger,
    connection: Record<string, string>,
    maxNotifyBytes = MAX_PAYLOAD,
  ) {
    this.#maxNotify = maxNotifyBytes;
    this.#sql = sql;
    this.#url = url;
    this.#log = log;
    this.#connection = connection;
    this.#channel = `blotter:${schema}`;
    this.#inboxChannel = `blotter_inbox:${schema}`;
  }

  // --- the change feed --------------------------------------------------------------------------

  /** Opens the LISTEN connection; resolves once listening (or throws if the database is away). */
  async startListening(): Promise<void> {
    // `onnotify` is a documented connection option that postgres.js's types leave out.
    const options = {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 5,
      connection: this.#connection,
      onnotice: () => {},
      onnotify: (channel: string, payload: string) => this.#onNotify(channel, payload),
      onclose: () => this.#onListenerClosed(),
    };
    this.#listener = postgres(this.#url, options as postgres.Options<Record<string, never>>);
    await this.#listen();
  }

  async #listen(): Promise<void> {
    const l = this.#listener!;
    await l.unsafe(`listen "${this.#channel.replaceAll('"', '""')}"`);
    await l.unsafe(`listen "${this.#inboxChannel.replaceAll('"', '""')}"`);
    this.#changes.connected = true;
    this.#log.info("listening for order events", { channel: this.#channel });
    for (const listener of this.#changes.listeners) listener.connected();
    this.#drainInbox();
  }

  #onListenerClosed(): void {
    if (this.#closed || this.#reconnecting) return;
    this.#reconnecting = true;
    if (this.#changes.connected) {
      this.#changes.connected = false;
      this.#log.warn("lost the database change feed; reconnecting");
      for (const l of this.#changes.listeners) l.disconnected("the database change feed was lost");
    }
    (async () => {
      for (let attempt = 0; !this.#closed; attempt++) {
        await new Promise((r) =>
          setTimeout(r, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)])
        );
        if (this.#closed) return;
        try {
          await this.#listen();
          return;
        } catch (err) {
          this.#log.debug("change feed reconnect failed", { err: String(err) });
        }
      }
    })().finally(() => {
      this.#reconnecting = false;
    });
  }

  #onNotify(channel: string, payload: string): void {
    if (channel === this.#inboxChannel) {
      this.#drainInbox();
      return;
    }
    if (channel !== this.#channel) return;
    let notice: Notice;
    try {
      notice = JSON.parse(payload);
    } catch {
      return;
    }
    this.#delivery = this.#delivery.then(async () => {
      const listeners = [...this.#changes.listeners];
      if (notice.k === "revoke") {
        for (const l of listeners) l.sessionRevoked(notice.s, notice.u);
        return;
      }
      let events: OrderEvent[];
      if (notice.k === "ev") events = notice.e;
      else {
        // Too big for NOTIFY: fetch exactly the seqs it names.
        const from = Math.min(...notice.s);
        events = (await this.eventsSince(notice.u, from - 1, notice.s.length))
          .filter((e) => notice.s.includes(e.seq));
      }
      const batch: UserEvent[] = events.map((event) => ({ user_id: notice.u, event }));
      for (const l of listeners) l.events(batch);
    }).catch((err) => this.#log.error("delivering a notification failed", { err: String(err) }));
  }

  /** The NOTIFY for events written in `tx`: delivered at commit, to every instance. */
  async #notifyEvents(tx: Tx, userId: string, events: OrderEvent[]): Promise<void> {
    if (events.length === 0) return;
    let payload = JSON.stringify({ k: "ev", u: userId, e: events } satisfies Notice);
    if (new TextEncoder().encode(payload).length > this.#maxNotify) {
      payload = JSON.stringify(
        { k: "ids", u: userId, s: events.map((e) => e.seq) } satisfies Notice,
      );
    }
    await tx`select pg_notify(${this.#channel}, ${payload})`;
  }

  // --- orders -----------------------------------------------------------------------------------

  async placeOrder(userId: string, request: OrderRequest, now: Date): Promise<PlaceResult> {
    return await this.#tx(async (tx) => {
      const seq = await this.#lockSeq(tx, userId);
      if (request.client_order_id !== null) {
        const [row] = await tx<{ body: Order }[]>`
          select body from orders where user_id = ${userId}
            and client_order_id = ${request.client_order_id}`;
        if (row) {
          const [first] = await tx<{ body: OrderEvent }[]>`
            select body from order_events where order_id = ${row.body.id} order by seq limit 1`;
          return {
            user_id: userId,
            order: row.body,
            events: first ? [first.body] : [],
            created: false,
          };
        }
      }
      const step = lifecycle.newOrder(request, uuidv7(now.getTime()), now);
      const events = eventsFromSteps([step], seq + 1, now);
      await this.#writeOrder(tx, userId, step.order, true);
      await this.#writeEvents(tx, userId, events);
      return { user_id: userId, order: step.order, events, created: true };
    });
  }

  requestCancel(userId: string, orderId: string, now: Date): Promise<WriteResult> {
    return this.#userAction(userId, orderId, (order) => lifecycle.requestCancel(order, now), now);
  }

  requestReplace(
    userId: string,
    orderId: string,
    changes: ReplaceRequest,
    now: Date,
  ): Promise<WriteResult> {
    return this.#userAction(
      userId,
      orderId,
      (order) => lifecycle.requestReplace(order, changes, now),
      now,
    );
  }

  async applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
    const first = await this.#duplicate(this.#sql, report.exec_id);
    if (first) return first;
    const owner = await this.orderOwner(report.order_id);
    if (!owner) throw orderNotFound(report.order_id);
    return await this.#tx(async (tx) => {
      const seq = await this.#lockSeq(tx, owner);
      // Under the user's lock: a concurrent copy of this report has committed or never will.
      const again = await this.#duplicate(tx, report.exec_id);
      if (again) return again;
      const [row] = await tx<{ body: Order }[]>`
        select body from orders where id = ${report.order_id}`;
      if (!row) throw orderNotFound(report.order_id);
      const order = row.body;
      const outcome = acceptedOrThrow(lifecycle.applyReport(order, report, {
        now,
        newId: () => uuidv7(now.getTime()),
      }));
      const events = eventsFromSteps(outcome.steps, seq + 1, now);
      const written = new Set<string>();
      for (const s of [...outcome.steps].reverse()) {
        if (written.has(s.order.id)) continue;
        written.add(s.order.id);
        await this.#writeOrder(tx, owner, s.order, s.order.id !== order.id);
      }
      await this.#writeEvents(tx, owner, events);
      await tx`insert into executions (exec_id, user_id, order_id, seqs)
        values (${report.exec_id}, ${owner}, ${order.id}, ${events.map((e) => e.seq)})`;
      return { user_id: owner, order: outcome.order, events, duplicate: false };
    });
  }

  async getOrder(userId: string, orderId: string): Promise<Order | null> {
    const [row] = await this.#q((sql) =>
      sql<{ body: Order }[]>`select body from orders where id = ${orderId} and user_id = ${userId}`
    );
    return row?.body ?? null;
  }

  async listOrders(
    userId: string,
    options: { status: StatusFilter; limit: number; cursor?: string | null },
  ): Promise<OrderPage> {
    const before = options.cursor ? decodeCursor(options.cursor) : null;
    const rows = await this.#q((sql) =>
      sql<{ body: Order }[]>`
        select body from orders
        where user_id = ${userId}
          ${options.status === "all" ? sql`` : sql`and final = ${options.status === "closed"}`}
          ${before ? sql`and id < ${before}` : sql``}
        order by id desc
        limit ${options.limit + 1}`
    );
    const orders = rows.map((r) => r.body);
    const more = orders.length > options.limit;
    if (more) orders.pop();
    return { orders, next_cursor: more ? encodeCursor(orders[orders.length - 1].id) : null };
  }

  async orderEvents(userId: string, orderId: string): Promise<OrderEvent[]> {
    const rows = await this.#q((sql) =>
      sql<{ body: OrderEvent }[]>`
        select body from order_events where order_id = ${orderId} and user_id = ${userId}
        order by seq`
    );
    return rows.map((r) => r.body);
  }

  async workingOrders(limit: number): Promise<Array<{ user_id: string; order: Order }>> {
    const rows = await this.#q((sql) =>
      sql<{ user_id: string; body: Order }[]>`
        select user_id, body from orders where not final order by id limit ${limit}`
    );
    return rows.map((r) => ({ user_id: r.user_id, order: r.body }));
  }

  async orderOwner(orderId: string): Promise<string | null> {
    const [row] = await this.#q((sql) =>
      sql<{ user_id: string }[]>`select user_id from orders where id = ${orderId}`
    );
    return row?.user_id ?? null;
  }

  // --- the event log ----------------------------------------------------------------------------

  async eventsSince(userId: string, afterSeq: number, limit: number): Promise<OrderEvent[]> {
    const rows = await this.#q((sql) =>
      sql<{ body: OrderEvent }[]>`
        select body from order_events where user_id = ${userId} and seq > ${afterSeq}
        order by seq limit ${limit}`
    );
    return rows.map((r) => r.body);
  }

  async eventsSinceMany(
    positions: ReadonlyArray<{ user_id: string; after_seq: number }>,
    limitPerUser: number,
  ): Promise<UserEvent[]> {
    if (positions.length === 0) return [];
    const rows = await this.#q((sql) =>
      sql<{ user_id: string; body: OrderEvent }[]>`
        select p.user_id, e.body
        from unnest(${positions.map((p) => p.user_id)}::text[],
                    ${positions.map((p) => p.after_seq)}::bigint[]) as p(user_id, after_seq)
        cross join lateral (
          select body, seq from order_events
          where user_id = p.user_id and seq > p.after_seq
          order by seq limit ${limitPerUser}
        ) e
        order by p.user_id, e.seq`
    );
    return rows.map((r) => ({ user_id: r.user_id, event: r.body }));
  }

  async currentSeq(userId: string): Promise<number> {
    const [row] = await this.#q((sql) =>
      sql<{ seq: string }[]>`select seq from user_seqs where user_id = ${userId}`
    );
    return row ? Number(row.seq) : 0;
  }

  async oldestSeq(userId: string): Promise<number | null> {
    const [row] = await this.#q((sql) =>
      sql<
        { seq: string | null }[]
      >`select min(seq) as seq from order_events where user_id = ${userId}`
    );
    return row?.seq == null ? null : Number(row.seq);
  }

  async pruneEvents(before: Date): Promise<number> {
    const result = await this.#q((sql) =>
      sql`
        delete from order_events e using user_seqs s
        where e.user_id = s.user_id and e.at < ${before} and e.seq < s.seq`
    );
    return result.count;
  }

  // --- sessions ---------------------------------------------------------------------------------

  async createSession(
    session: Omit<Session, "revoked_at" | "last_seen_at">,
    tokenHash: string,
  ): Promise<Session> {
    const [row] = await this.#q((sql) =>
      sql<SessionRow[]>`
        insert into sessions (id, user_id, token_hash, label, created_at, last_seen_at)
        values (${session.id}, ${session.user_id}, ${tokenHash}, ${session.label},
                ${session.created_at}, ${session.created_at})
        returning *`
    );
    return sessionOf(row);
  }

  async sessionByTokenHash(tokenHash: string): Promise<Session | null> {
    const [row] = await this.#q((sql) =>
      sql<SessionRow[]>`select * from sessions where token_hash = ${tokenHash}`
    );
    return row ? sessionOf(row) : null;
  }

  async getSession(sessionId: string): Promise<Session | null> {
    const [row] = await this.#q((sql) =>
      sql<SessionRow[]>`select * from sessions where id = ${sessionId}`
    );
    return row ? sessionOf(row) : null;
  }

  async ensureSession(session: Omit<Session, "revoked_at" | "last_seen_at">): Promise<Session> {
    await this.#q((sql) =>
      sql`
        insert into sessions (id, user_id, label, created_at, last_seen_at)
        values (${session.id}, ${session.user_id}, ${session.label}, ${session.created_at},
                ${session.created_at})
        on conflict (id) do nothing`
    );
    return (await this.getSession(session.id))!;
  }

  async touchSession(sessionId: string, now: Date): Promise<void> {
    await this.#q((sql) =>
      sql`update sessions set last_seen_at = ${now} where id = ${sessionId} and revoked_at is null`
    );
  }

  async listSessions(userId: string): Promise<Session[]> {
    const rows = await this.#q((sql) =>
      sql<SessionRow[]>`
        select * from sessions where user_id = ${userId} and revoked_at is null
        order by created_at desc`
    );
    return rows.map(sessionOf);
  }

  async revokeSession(userId: string | null, sessionId: string, now: Date): Promise<boolean> {
    return await this.#tx(async (tx) => {
      const [row] = await tx<{ user_id: string }[]>`
        update sessions set revoked_at = ${now}
        where id = ${sessionId} and revoked_at is null
          ${userId === null ? tx`` : tx`and user_id = ${userId}`}
        returning user_id`;
      if (!row) return false;
      await tx`delete from push_subscriptions where session_id = ${sessionId}`;
      const notice: Notice = { k: "revoke", u: row.user_id, s: sessionId };
      await tx`select pg_notify(${this.#channel}, ${JSON.stringify(notice)})`;
      return true;
    });
  }

  // --- push subscriptions -----------------------------------------------------------------------

  async addPushSubscription(sub: PushSubscriptionRecord): Promise<void> {
    await this.#q((sql) =>
      sql`
        insert into push_subscriptions (endpoint, user_id, session_id, keys, created_at)
        values (${sub.endpoint}, ${sub.user_id}, ${sub.session_id}, ${sql.json(sub.keys)},
                ${sub.created_at})
        on conflict (endpoint) do update set user_id = excluded.user_id,
          session_id = excluded.session_id, keys = excluded.keys`
    );
  }

  async removePushSubscription(userId: string, endpoint: string): Promise<boolean> {
    const result = await this.#q((sql) =>
      sql`delete from push_subscriptions where endpoint = ${endpoint} and user_id = ${userId}`
    );
    return result.count > 0;
  }

  async removePushSubscriptionByEndpoint(endpoint: string): Promise<void> {
    await this.#q((sql) => sql`delete from push_subscriptions where endpoint = ${endpoint}`);
  }

  async listPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    const rows = await this.#q((sql) =>
      sql<
        {
          endpoint: string;
          user_id: string;
          session_id: string;
          keys: { p256dh: string; auth: string };
          created_at: Date;
        }[]
      >`select * from push_subscriptions where user_id = ${userId} order by created_at`
    );
    return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
  }

  // --- settings ---------------------------------------------------------------------------------

  async getSetting(key: string): Promise<string | null> {
    const [row] = await this.#q((sql) =>
      sql<{ value: string }[]>`select value from settings where key = ${key}`
    );
    return row?.value ?? null;
  }

  async setSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.#q((sql) =>
      sql`insert into settings (key, value) values (${key}, ${value}) on conflict do nothing`
    );
    return (await this.getSetting(key))!;
  }

  async ping(): Promise<boolean> {
    try {
      await this.#sql`select 1`;
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#draining;
    await this.#delivery;
    await this.#listener?.end({ timeout: 1 });
    await this.#sql.end({ timeout: 2 });
  }

  // --- the inbox --------------------------------------------------------------------------------

  /** Applies pending inbox rows; one drain at a time per process, re-run if woken meanwhile. */
  #drainInbox(): void {
    if (this.#draining) {
      this.#drainAgain = true;
      return;
    }
    this.#draining = (async () => {
      do {
        this.#drainAgain = false;
        while (!this.#closed && await this.#drainBatch() > 0) { /* next batch */ }
      } while (this.#drainAgain && !this.#closed);
    })().catch((err) => this.#log.warn("draining the execution inbox failed", { err: String(err) }))
      .finally(() => {
        this.#draining = null;
      });
  }

  async #drainBatch(): Promise<number> {
    // Claimed rows that were never answered (an instance died mid-way) are taken again after
    // 30 s; applying twice is harmless because exec_id is idempotent.
    const rows = await this.#sql<{ id: string; report: unknown }[]>`
      update execution_inbox set claimed_at = now()
      where id in (
        select id from execution_inbox
        where processed_at is null
          and (claimed_at is null or claimed_at < now() - interval '30 seconds')
        order by id limit 100
        for update skip locked)
      returning id, report`;
    rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
    for (const row of rows) {
      let status: number, result: unknown;
      const parsed = ExecutionReport.safeParse(row.report);
      if (!parsed.success) {
        status = 400;
        result = errorBody(
          new AppError("invalid_request", "The report is not valid", parsed.error.issues),
        );
      } else {
        try {
          const applied = await this.applyReport(parsed.data, new Date());
          status = applied.duplicate ? 200 : 201;
          result = { order: applied.order, seqs: applied.events.map((e) => e.seq) };
        } catch (err) {
          if (!(err instanceof AppError) || err.code === "unavailable") throw err;
          status = err.status;
          result = errorBody(err);
        }
      }
      await this.#sql`
        update execution_inbox set processed_at = now(), result_status = ${status},
          result = ${this.#sql.json(result as postgres.JSONValue)}
        where id = ${row.id}`;
    }
    return rows.length;
  }

  // --- internals --------------------------------------------------------------------------------

  async #q<T>(run: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      return await run(this.#sql);
    } catch (err) {
      throw unavailableIfConnection(err);
    }
  }

  /**
   * One transaction on a connection reserved first. Not `sql.begin`: in postgres.js 3.4.9 a
   * BEGIN that fills a connection's pipeline skips the reservation, and under concurrent load
   * transactions then fail with UNSAFE_TRANSACTION (porsager/postgres#823, #1189; seen here in
   * the bench at 500 reports/s). Reserving the connection before BEGIN avoids that path.
   */
  async #tx<T>(run: (tx: Tx) => Promise<T>): Promise<T> {
    let conn: postgres.ReservedSql | null = null;
    try {
      conn = await this.#sql.reserve();
      await conn.unsafe("begin");
      try {
        const result = await run(conn as unknown as Tx);
        await conn.unsafe("commit");
        return result;
      } catch (err) {
        await conn.unsafe("rollback").catch(() => {});
        throw err;
      }
    } catch (err) {
      throw unavailableIfConnection(err);
    } finally {
      conn?.release();
    }
  }

  /** Locks the user's counter row until commit and returns their latest seq. */
  async #lockSeq(tx: Tx, userId: string): Promise<number> {
    await tx`insert into user_seqs (user_id, seq) values (${userId}, 0) on conflict do nothing`;
    const [row] = await tx<{ seq: string }[]>`
      select seq from user_seqs where user_id = ${userId} for update`;
    return Number(row.seq);
  }

  async #duplicate(sql: Sql | Tx, execId: string): Promise<ApplyResult | null> {
    const [rec] = await sql<{ user_id: string; order_id: string; seqs: string[] }[]>`
      select user_id, order_id, seqs from executions where exec_id = ${execId}`;
    if (!rec) return null;
    const seqs = rec.seqs.map(Number);
    const rows = seqs.length === 0 ? [] : await sql<{ body: OrderEvent }[]>`
      select body from order_events where user_id = ${rec.user_id} and seq = any(${seqs})
      order by seq`;
    const events = rows.map((r) => r.body);
    const order = events[0]?.order ??
      (await sql<{ body: Order }[]>`select body from orders where id = ${rec.order_id}`)[0].body;
    return { user_id: rec.user_id, order, events, duplicate: true };
  }

  async #writeOrder(tx: Tx, userId: string, order: Order, insert: boolean): Promise<void> {
    if (insert) {
      await tx`
        insert into orders (id, user_id, client_order_id, final, body)
        values (${order.id}, ${userId}, ${order.client_order_id}, ${isFinal(order.status)},
                ${tx.json(order as unknown as postgres.JSONValue)}::json)`;
    } else {
      await tx`
        update orders set final = ${isFinal(order.status)},
          body = ${tx.json(order as unknown as postgres.JSONValue)}::json
        where id = ${order.id}`;
    }
  }

  async #writeEvents(tx: Tx, userId: string, events: OrderEvent[]): Promise<void> {
    if (events.length === 0) return;
    for (const e of events) {
      await tx`
        insert into order_events (user_id, seq, order_id, at, body)
        values (${userId}, ${e.seq}, ${e.order.id}, ${e.at},
                ${tx.json(e as unknown as postgres.JSONValue)}::json)`;
    }
    await tx`update user_seqs set seq = ${events[events.length - 1].seq} where user_id = ${userId}`;
    await this.#notifyEvents(tx, userId, events);
  }

  /** A user's request on their own order (cancel, replace). */
  #userAction(
    userId: string,
    orderId: string,
    decide: (order: Order) => lifecycle.Outcome,
    now: Date,
  ): Promise<WriteResult> {
    return this.#tx(async (tx) => {
      const seq = await this.#lockSeq(tx, userId);
      const [row] = await tx<{ body: Order }[]>`
        select body from orders where id = ${orderId} and user_id = ${userId}`;
      if (!row) throw orderNotFound(orderId);
      const outcome = acceptedOrThrow(decide(row.body));
      if (outcome.steps.length === 0) return { user_id: userId, order: row.body, events: [] };
      const events = eventsFromSteps(outcome.steps, seq + 1, now);
      await this.#writeOrder(tx, userId, outcome.order, false);
      await this.#writeEvents(tx, userId, events);
      return { user_id: userId, order: outcome.order, events };
    });
  }
}

type SessionRow = {
  id: string;
  user_id: string;
  label: string;
  created_at: Date;
  last_seen_at: Date;
  revoked_at: Date | null;
};

function sessionOf(row: SessionRow): Session {
  return {
    id: row.id,
    user_id: row.user_id,
    label: row.label,
    created_at: row.created_at.toISOString(),
    last_seen_at: row.last_seen_at.toISOString(),
    revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
  };
}
