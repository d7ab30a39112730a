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
import { SubscriptionCache } from "./subscription_cache.ts";
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

const encoder = new TextEncoder();
/** NOTIFY payloads must stay under 8000 bytes; above this, send ids and let listeners fetch. */
const MAX_PAYLOAD = 7_500;
/** Write transactions run on this many connections of their own (see `#write`). */
const WRITERS = 6;
/** At most this many report groups are committing at once (the pool has room for more). */
const GROUPS = 4;
/** At most this many reports go in one group. */
const GROUP_MAX = 250;
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
  | { k: "revoke"; u: string; s: string }
  | { k: "subs"; u: string };

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
  const writers = new Writers(WRITERS, (onclose) =>
    postgres(url, {
      max: 1,
      connection,
      onnotice: () => {},
      connect_timeout: 5,
      // Never recycled under a transaction (the default lifetime is 30-60 min): a writer's
      // connection ends only when the server or the network ends it.
      max_lifetime: null,
      onclose,
    }));
  const store = new PgStore(
    sql,
    writers,
    url,
    schema,
    options.log,
    connection,
    options.maxNotifyBytes,
  );
  await store.startListening();
  return store;
}

/** Turns "the database is away" into a 503 the API can answer; other errors pass through. */
function unavailableIfConnection(err: unknown): unknown {
  if (isConnectionError(err)) {
    return new AppError("unavailable", "The database is unavailable; try again shortly");
  }
  return err;
}

/** The error for a transaction whose connection went away under it. */
function connectionLost(): Error {
  return Object.assign(new Error("the connection closed during the transaction"), {
    code: "CONNECTION_CLOSED",
  });
}

/** Write connections: one-connection pools, handed out one transaction at a time. */
class Writers {
  readonly #idle: Writer[] = [];
  readonly #all: Writer[] = [];
  readonly #waiting: Array<(w: Writer) => void> = [];

  constructor(count: number, open: (onclose: () => void) => Sql) {
    for (let i = 0; i < count; i++) {
      const w: Writer = { sql: null as unknown as Sql, generation: 0 };
      w.sql = open(() => w.generation++);
      this.#all.push(w);
      this.#idle.push(w);
    }
  }

  acquire(): Promise<Writer> {
    const w = this.#idle.pop();
    if (w) return Promise.resolve(w);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(w: Writer): void {
    const next = this.#waiting.shift();
    if (next) next(w);
    else this.#idle.push(w);
  }

  async end(): Promise<void> {
    await Promise.all(this.#all.map((w) => w.sql.end({ timeout: 2 })));
  }
}

/** A one-connection pool for transactions; `generation` counts its connection's closes. */
interface Writer {
  sql: Sql;
  generation: number;
}

/** Whether `err` says the connection or the server went away (not a query's own failure). */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return /^(ECONNREFUSED|ECONNRESET|CONNECT_TIMEOUT|CONNECTION_|EPIPE)/.test(code) ||
    /^(08|57P)/.test(code);
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
  readonly #writers: Writers;
  readonly #url: string;
  readonly #log: Logger;
  readonly #connection: Record<string, string>;
  readonly #channel: string;
  readonly #inboxChannel: string;
  readonly #changes = new PgChanges();
  /** Whom to alert, per user (asked on every fill). */
  readonly #subs = new SubscriptionCache<PushSubscriptionRecord>();
  readonly changes: ChangeSource = this.#changes;
  readonly #maxNotify: number;
  #listener: Sql | null = null;
  #closed = false;
  #reconnecting = false;
  /** Notifications are delivered in arrival order, even when one must first fetch its events. */
  #delivery: Promise<void> = Promise.resolve();
  #draining: Promise<void> | null = null;
  #drainAgain = false;
  /** Reports waiting for a group, and how many groups are committing. */
  #waiting: PendingReport[] = [];
  #groupsRunning = 0;

  constructor(
    sql: Sql,
    writers: Writers,
    url: string,
    schema: string,
    log: Logger,
    connection: Record<string, string>,
    maxNotifyBytes = MAX_PAYLOAD,
  ) {
    this.#maxNotify = maxNotifyBytes;
    this.#sql = sql;
    this.#writers = writers;
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
    this.#subs.clear(); // whatever changed while not listening was not heard
    this.#changes.connected = true;
    this.#log.info("listening for order events", { channel: this.#channel });
    for (const listener of this.#changes.listeners) listener.connected();
    this.#drainInbox();
  }

  #onListenerClosed(): void {
    if (this.#closed || this.#reconnecting) return;
    this.#reconnecting = true;
    this.#subs.clear();
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
    // A revoked session's subscriptions are deleted with it; either way this user's alert targets
    // changed, on some instance.
    if (notice.k === "subs" || notice.k === "revoke") this.#subs.forget(notice.u);
    if (notice.k === "subs") return;
    this.#delivery = this.#delivery.then(async () => {
      const listeners = [...this.#changes.listeners];
      if (notice.k === "revoke") {
        for (const l of listeners) l.sessionRevoked(notice.s, notice.u);
        return;
      }
      let events: OrderEvent[];
      if (notice.k === "ev") events = notice.e;
      else if (notice.k !== "ids") return; // a kind from a newer release: not ours to act on
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

  // --- orders -----------------------------------------------------------------------------------

  async placeOrder(userId: string, request: OrderRequest, now: Date): Promise<PlaceResult> {
    return await this.#write(
      (tx) => this.#lockUser(tx, userId),
      async (tx, [{ seq }]): Promise<{ result: PlaceResult; write?: Promise<unknown> }> => {
        if (request.client_order_id !== null) {
          const [row] = await tx<{ body: Order; first: OrderEvent | null }[]>`
            select o.body, (select body from order_events e where e.order_id = o.id
                            order by seq limit 1) as first
            from orders o where o.user_id = ${userId}
              and o.client_order_id = ${request.client_order_id}`;
          if (row) {
            const events = row.first ? [row.first] : [];
            return { result: { user_id: userId, order: row.body, events, created: false } };
          }
        }
        const step = lifecycle.newOrder(request, uuidv7(now.getTime()), now);
        const events = eventsFromSteps([step], Number(seq) + 1, now);
        return {
          result: { user_id: userId, order: step.order, events, created: true },
          write: this.#writeChanges(
            tx,
            new Changes().order(userId, step.order).events(userId, events),
          ),
        };
      },
    );
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

  /**
   * Reports are group-committed: a report starts its own transaction at once while fewer than
   * GROUPS are in flight; otherwise it waits and goes with everything else waiting, in one
   * transaction. At low load that adds nothing; under load it turns N commits (N WAL flushes,
   * 3N round trips) into one. Each report still gets its own answer.
   */
  applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ report, now, resolve, reject });
      this.#startGroups();
    });
  }

  #startGroups(): void {
    while (this.#groupsRunning < GROUPS && this.#waiting.length > 0) {
      const group = this.#waiting.splice(0, GROUP_MAX);
      this.#groupsRunning++;
      this.#applyGroup(group).finally(() => {
        this.#groupsRunning--;
        this.#startGroups();
      });
    }
  }

  /** Applies a group in one transaction; if it fails as a whole, each report alone. */
  async #applyGroup(group: PendingReport[]): Promise<void> {
    try {
      const answers = await this.#write(
        (tx) =>
          // Every owner's counter row, locked in user_id order so concurrent groups never
          // deadlock; the join also answers each order's owner.
          tx<{ user_id: string; seq: string; order_id: string }[]>`
            select s.user_id, s.seq, o.id as order_id
            from orders o join user_seqs s on s.user_id = o.user_id
            where o.id = any(${[...new Set(group.map((p) => p.report.order_id))]}::uuid[])
            order by s.user_id
            for update of s`,
        (tx, locked) => this.#decideGroup(tx, group, locked),
      );
      answers.forEach((answer, i) => {
        if (answer instanceof Error) group[i].reject(answer);
        else group[i].resolve(answer);
      });
    } catch (err) {
      if (group.length > 1 && !(err instanceof AppError && err.code === "unavailable")) {
        // One report's write failed the whole group: give every report its own transaction.
        for (const p of group) await this.#applyGroup([p]);
      } else for (const p of group) p.reject(err);
    }
  }

  /** Under the owners' locks: reads the orders, applies each report in turn, returns the write. */
  async #decideGroup(
    tx: Tx,
    group: PendingReport[],
    locked: { user_id: string; seq: string; order_id: string }[],
  ): Promise<{ result: Array<ApplyResult | Error>; write?: Promise<unknown> }> {
    const owners = new Map<string, string>();
    const seqs = new Map<string, number>();
    for (const l of locked) {
      owners.set(l.order_id, l.user_id);
      seqs.set(l.user_id, Number(l.seq));
    }
    // A fresh snapshot, taken under the locks: a concurrent copy of any of these reports has
    // committed or never will, and each order is as its last writer left it.
    const [orderRows, execRows] = await Promise.all([
      tx<{ body: Order }[]>`select body from orders where id = any(${[...owners.keys()]}::uuid[])`,
      // Planned afresh each time (an unnamed statement): as a prepared statement Postgres may
      // switch it to a generic plan and keep it; planned while `executions` was small, that was a
      // sequential scan which grew with the table (3 ms a group after 20 s at 1,000 reports/s,
      // for good with autovacuum off).
      tx.unsafe<{ exec_id: string; user_id: string; seqs: string[] }[]>(
        "select exec_id, user_id, seqs from executions where exec_id = any($1::text[])",
        [group.map((p) => p.report.exec_id)],
        { prepare: false },
      ),
    ]);
    const orders = new Map(orderRows.map((r) => [r.body.id, r.body]));
    const firstTime = new Map(execRows.map((r) => [r.exec_id, r]));
    const changes = new Changes();
    const inGroup = new Map<string, ApplyResult>();
    const result: Array<ApplyResult | Error> = [];
    for (const { report, now } of group) {
      const earlier = inGroup.get(report.exec_id);
      if (earlier) {
        result.push({ ...earlier, duplicate: true });
        continue;
      }
      const owner = owners.get(report.order_id);
      const order = orders.get(report.order_id);
      if (!owner || !order) {
        result.push(orderNotFound(report.order_id));
        continue;
      }
      const first = firstTime.get(report.exec_id);
      if (first) {
        result.push(await this.#firstResult(tx, first.user_id, first.seqs.map(Number), order));
        continue;
      }
      const outcome = lifecycle.applyReport(order, report, {
        now,
        newId: () => uuidv7(now.getTime()),
      });
      if ("refused" in outcome) {
        result.push(new AppError(outcome.code, outcome.refused));
        continue;
      }
      const events = eventsFromSteps(outcome.steps, seqs.get(owner)! + 1, now);
      if (events.length > 0) seqs.set(owner, events[events.length - 1].seq);
      for (const step of outcome.steps) {
        // A replacement is known from here on, for later reports in this group.
        orders.set(step.order.id, step.order);
        owners.set(step.order.id, owner);
        changes.order(owner, step.order);
      }
      changes.events(owner, events);
      changes.execution(report.exec_id, owner, order.id, events);
      const applied = { user_id: owner, order: outcome.order, events, duplicate: false };
      inGroup.set(report.exec_id, applied);
      result.push(applied);
    }
    return { result, write: changes.empty ? undefined : this.#writeChanges(tx, changes) };
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
    await this.#q((sql) => sql`delete from alert_claims where claimed_at < ${before}`);
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
    // One statement, so atomic: revoke, drop the device's push subscriptions, tell every instance.
    const rows = await this.#q((sql) =>
      sql<{ user_id: string }[]>`
        with r as (
          update sessions set revoked_at = ${now}
          where id = ${sessionId} and revoked_at is null
            ${userId === null ? sql`` : sql`and user_id = ${userId}`}
          returning user_id
        ), d as (
          delete from push_subscriptions where session_id = ${sessionId}
            and exists (select 1 from r)
        )
        select user_id, pg_notify(${this.#channel},
                         json_build_object('k', 'revoke', 'u', user_id, 's', ${sessionId}::text)::text)
        from r`
    );
    this.#forgetSubs(rows);
    return rows.length > 0;
  }

  // --- push subscriptions -----------------------------------------------------------------------

  // Each change NOTIFYs `subs` for the users it touched, in the same statement, so every instance
  // forgets what it cached for them (see store/subscription_cache.ts); this one forgets at once.

  async addPushSubscription(sub: PushSubscriptionRecord): Promise<void> {
    const rows = await this.#q((sql) =>
      sql<{ user_id: string }[]>`
        with prev as (
          -- Locked, so an upsert of the same endpoint racing this one is seen, not missed.
          select user_id from push_subscriptions where endpoint = ${sub.endpoint} for update
        ), up as (
          insert into push_subscriptions (endpoint, user_id, session_id, keys, created_at)
          values (${sub.endpoint}, ${sub.user_id}, ${sub.session_id}, ${sql.json(sub.keys)},
                  ${sub.created_at})
          on conflict (endpoint) do update set user_id = excluded.user_id,
            session_id = excluded.session_id, keys = excluded.keys
          returning user_id
        )
        ${this.#subsChanged(sql, sql`select user_id from prev union select user_id from up`)}`
    );
    this.#forgetSubs(rows);
  }

  async removePushSubscription(userId: string, endpoint: string): Promise<boolean> {
    const rows = await this.#q((sql) =>
      sql<{ user_id: string }[]>`
        with d as (
          delete from push_subscriptions where endpoint = ${endpoint} and user_id = ${userId}
          returning user_id
        )
        ${this.#subsChanged(sql, sql`select user_id from d`)}`
    );
    this.#forgetSubs(rows);
    return rows.length > 0;
  }

  async removePushSubscriptionByEndpoint(endpoint: string): Promise<void> {
    const rows = await this.#q((sql) =>
      sql<{ user_id: string }[]>`
        with d as (delete from push_subscriptions where endpoint = ${endpoint} returning user_id)
        ${this.#subsChanged(sql, sql`select user_id from d`)}`
    );
    this.#forgetSubs(rows);
  }

  /** The tail of a statement that NOTIFYs `subs` for each user `users` selects, and returns them. */
  #subsChanged(sql: Sql, users: postgres.PendingQuery<postgres.Row[]>) {
    return sql`
      select u.user_id, pg_notify(${this.#channel},
                                  json_build_object('k', 'subs', 'u', u.user_id)::text)
      from (${users}) u`;
  }

  #forgetSubs(rows: { user_id: string }[]): void {
    for (const r of rows) this.#subs.forget(r.user_id);
  }

  listPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    // Asked on every fill: served from the cache while the change feed (which brings word of
    // changes made on other instances) is up.
    return this.#subs.get(
      userId,
      () => this.#loadPushSubscriptions(userId),
      this.#changes.connected,
    );
  }

  async #loadPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    const rows = await this.#q((sql) =>
      sql<
        {
          endpoint: string;
          user_id: string;
          session_id: string;
          keys: { p256dh: string; auth: string };
          created_at: Date;
        }[]
      >`
        select p.* from push_subscriptions p
        where p.user_id = ${userId}
          -- One that raced its device's sign-out (inserted just after the revoke's delete) is
          -- never used: a signed-out device gets no alerts.
          and not exists (
            select 1 from sessions s where s.id = p.session_id and s.revoked_at is not null
          )
        order by p.created_at`
    );
    return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
  }

  async claimAlert(userId: string, seq: number, now: Date): Promise<boolean> {
    const result = await this.#q((sql) =>
      sql`
        insert into alert_claims (user_id, seq, claimed_at) values (${userId}, ${seq}, ${now})
        on conflict do nothing`
    );
    return result.count === 1;
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
    // Reports already handed in are committed (or answered) before the pool closes.
    for (let i = 0; i < 500 && (this.#groupsRunning > 0 || this.#waiting.length > 0); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#closed = true;
    await this.#draining;
    await this.#delivery;
    await this.#listener?.end({ timeout: 1 });
    await this.#writers.end();
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
    })().catch((err) => {
      this.#log.warn("draining the execution inbox failed; trying again shortly", {
        err: String(err),
      });
      // Nothing else may wake the drain (no new insert, the listener never dropped): retry.
      if (!this.#closed) setTimeout(() => !this.#closed && this.#drainInbox(), 1_000);
    }).finally(() => {
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
    let done = 0;
    try {
      for (const row of rows) {
        await this.#answerInboxRow(row);
        done++;
      }
    } catch (err) {
      // The database went away mid-batch: give the rest back at once rather than after the
      // 30 s claim timeout (best effort; the timeout still covers a failure here).
      const rest = rows.slice(done).map((r) => r.id);
      await this.#sql`update execution_inbox set claimed_at = null where id = any(${rest})`
        .catch(() => {});
      throw err;
    }
    return rows.length;
  }

  /** Validates and applies one inbox row and records the answer the API would have given. */
  async #answerInboxRow(row: { id: string; report: unknown }): Promise<void> {
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

  // --- internals --------------------------------------------------------------------------------

  async #q<T>(run: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      return await run(this.#sql);
    } catch (err) {
      throw unavailableIfConnection(err);
    }
  }

  /**
   * One write transaction in as few round trips as Postgres allows: BEGIN is pipelined with
   * `lock` (which locks the user's counter row and answers their seq), `decide` reads what it
   * needs under that lock and returns the result with the one statement that writes it, and that
   * statement is pipelined with COMMIT (if it fails, the transaction is aborted and COMMIT rolls
   * it back).
   *
   * It runs on a writer: a one-connection pool of its own. Not `sql.begin` (in postgres.js 3.4.9
   * a BEGIN that lands in a busy connection's pipeline skips the reservation and fails with
   * UNSAFE_TRANSACTION under load, porsager/postgres#823/#1189) and not `sql.reserve()` (a
   * reserved connection that dies is put back as open on release, and the next query on it
   * writes to a null socket outside any promise, which kills the process; seen here restarting
   * Postgres under load). A one-connection pool reconnects by itself; its `onclose` tells us the
   * transaction's connection is gone, and then nothing more of it is sent.
   */
  async #write<T, L extends { seq: string }>(
    lock: (tx: Tx) => Promise<L[]>,
    decide: (tx: Tx, locked: L[]) => Promise<{ result: T; write?: Promise<unknown> }>,
  ): Promise<T> {
    const w = await this.#writers.acquire();
    const generation = w.generation;
    const tx = w.sql as unknown as Tx;
    try {
      try {
        const [, locked] = await Promise.all([w.sql.unsafe("begin"), lock(tx)]);
        const { result, write } = await decide(tx, locked);
        // If the connection dropped after BEGIN, the reads above ran on a new one outside the
        // transaction and the lock is gone: write nothing.
        if (w.generation !== generation) throw connectionLost();
        // Both answered: the commit happened. (A drop after this point changes nothing; calling it
        // a failure would make clients retry what is already stored.)
        await Promise.all([write, w.sql.unsafe("commit")]);
        return result;
      } catch (err) {
        // After a query's own failure the transaction is open (aborted): end it. After the
        // connection dropped, BEGIN may have run again on its replacement (a transaction with
        // row locks open there): end that too. Only a plain loss of the connection needs nothing.
        if (!isConnectionError(err) || w.generation !== generation) {
          // Bounded: while the database is away a queued ROLLBACK waits for a reconnect. It stays
          // queued ahead of the writer's next BEGIN on the same single connection either way.
          await Promise.race([
            w.sql.unsafe("rollback").catch(() => {}),
            new Promise((r) => setTimeout(r, 2_000)),
          ]);
        }
        throw err;
      }
    } catch (err) {
      throw unavailableIfConnection(err);
    } finally {
      this.#writers.release(w);
    }
  }

  /** Locks the user's counter row (creating it on their first order) and answers their seq. */
  #lockUser(tx: Tx, userId: string) {
    return tx<{ user_id: string; seq: string }[]>`
      insert into user_seqs (user_id, seq) values (${userId}, 0)
      on conflict (user_id) do update set seq = user_seqs.seq
      returning user_id, seq`;
  }

  /** The answer an exec_id got the first time, for a duplicate. */
  async #firstResult(tx: Tx, userId: string, seqs: number[], order: Order): Promise<ApplyResult> {
    const rows = seqs.length === 0 ? [] : await tx<{ body: OrderEvent }[]>`
      select body from order_events where user_id = ${userId} and seq = any(${seqs})
      order by seq`;
    const events = rows.map((r) => r.body);
    return { user_id: userId, order: events[0]?.order ?? order, events, duplicate: true };
  }

  /**
   * Every write of a transaction as one statement: the orders' snapshots, the events, each user's
   * seq, each exec_id's first answer and one NOTIFY per user (delivered at commit, to every
   * instance).
   */
  #writeChanges(tx: Tx, c: Changes): Promise<unknown> {
    const json = (v: unknown) => tx.json(v as postgres.JSONValue);
    const orders = [...c.orders.values()].map(({ user_id, order }) => ({
      u: user_id,
      final: isFinal(order.status),
      body: order,
    }));
    const events = [...c.byUser].flatMap(([u, es]) => es.map((e) => ({ u, e })));
    const users = [...c.byUser.keys()];
    return tx`
      with o as (
        insert into orders (id, user_id, client_order_id, final, body)
        select (x->'body'->>'id')::uuid, x->>'u', x->'body'->>'client_order_id',
               (x->>'final')::boolean, x->'body'
        from json_array_elements(${json(orders)}::json) x
        on conflict (id) do update set final = excluded.final, body = excluded.body
      ), e as (
        insert into order_events (user_id, seq, order_id, at, body)
        select x->>'u', (x->'e'->>'seq')::bigint, (x->'e'->'order'->>'id')::uuid,
               (x->'e'->>'at')::timestamptz, x->'e'
        from json_array_elements(${json(events)}::json) x
      ), s as (
        update user_seqs u set seq = v.seq
        from unnest(${users}::text[], ${
      users.map((u) => c.byUser.get(u)!.at(-1)!.seq)
    }::bigint[]) as v(user_id, seq)
        where u.user_id = v.user_id
      ), x as (
        insert into executions (exec_id, user_id, order_id, seqs)
        select x->>'exec_id', x->>'user_id', (x->>'order_id')::uuid,
               array(select json_array_elements_text(x->'seqs'))::bigint[]
        from json_array_elements(${json(c.executions)}::json) x
      )
      select pg_notify(${this.#channel}, p)
      from unnest(${users.map((u) => this.#notice(u, c.byUser.get(u)!))}::text[]) as p`;
  }

  /** The NOTIFY payload for `events`: the events, or their seqs when too big for NOTIFY. */
  #notice(userId: string, events: OrderEvent[]): string {
    const payload = JSON.stringify({ k: "ev", u: userId, e: events } satisfies Notice);
    if (encoder.encode(payload).length <= this.#maxNotify) return payload;
    return JSON.stringify({ k: "ids", u: userId, s: events.map((e) => e.seq) } satisfies Notice);
  }

  /** A user's request on their own order (cancel, replace). */
  #userAction(
    userId: string,
    orderId: string,
    decide: (order: Order) => lifecycle.Outcome,
    now: Date,
  ): Promise<WriteResult> {
    return this.#write(
      (tx) => this.#lockUser(tx, userId),
      async (tx, [{ seq }]): Promise<{ result: WriteResult; write?: Promise<unknown> }> => {
        const [row] = await tx<{ body: Order }[]>`
          select body from orders where id = ${orderId} and user_id = ${userId}`;
        if (!row) throw orderNotFound(orderId);
        const outcome = acceptedOrThrow(decide(row.body));
        if (outcome.steps.length === 0) {
          return { result: { user_id: userId, order: row.body, events: [] } };
        }
        const events = eventsFromSteps(outcome.steps, Number(seq) + 1, now);
        return {
          result: { user_id: userId, order: outcome.order, events },
          write: this.#writeChanges(
            tx,
            new Changes().order(userId, outcome.order).events(userId, events),
          ),
        };
      },
    );
  }
}

/** A report waiting to be group-committed, with its caller's answer. */
interface PendingReport {
  report: ExecutionReport;
  now: Date;
  resolve(result: ApplyResult): void;
  reject(err: unknown): void;
}

/** What one transaction writes, collected as it decides. */
class Changes {
  /** The latest snapshot of every order touched, by id. */
  readonly orders = new Map<string, { user_id: string; order: Order }>();
  /** New events per user, in seq order. */
  readonly byUser = new Map<string, OrderEvent[]>();
  readonly executions: Array<
    { exec_id: string; user_id: string; order_id: string; seqs: number[] }
  > = [];

  get empty(): boolean {
    return this.orders.size === 0 && this.byUser.size === 0 && this.executions.length === 0;
  }

  order(userId: string, order: Order): this {
    this.orders.set(order.id, { user_id: userId, order });
    return this;
  }

  events(userId: string, events: OrderEvent[]): this {
    if (events.length === 0) return this;
    const list = this.byUser.get(userId);
    if (list) list.push(...events);
    else this.byUser.set(userId, [...events]);
    return this;
  }

  execution(execId: string, userId: string, orderId: string, events: OrderEvent[]): this {
    this.executions.push({
      exec_id: execId,
      user_id: userId,
      order_id: orderId,
      seqs: events.map((e) => e.seq),
    });
    return this;
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
