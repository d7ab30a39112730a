/**
 * What one write transaction writes, and how: the `WriteSet` builder a transaction fills as it
 * decides, `recordWriteSet` that turns it into one statement (snapshots, events, seqs, exec_ids and
 * the NOTIFYs, delivered at commit to every instance, unless the bus carries them), and the hand-off
 * of committed events to this instance's own listeners (and to the bus).
 */
import { isFinal, type Order, type OrderEvent, type UserEvent } from "../../orders/model.ts";
import { jsonOf } from "../../orders/json.ts";
import type { GroupDecision } from "../report_group.ts";
import type { PgContext, Tx } from "./connect.ts";
import { notices } from "./notices.ts";
import { bareArray, boolArray, quotedArray, records } from "./wire.ts";

/** What one transaction writes, collected as it decides. */
export class WriteSet {
  /** The latest snapshot of every order touched, by id. */
  readonly orders = new Map<string, { user_id: string; order: Order }>();
  /** New events per user, in seq order. */
  readonly byUser = new Map<string, OrderEvent[]>();
  /** Each applied exec_id with the seqs it produced (its first answer, for duplicates). */
  readonly executions: Array<
    { exec_id: string; user_id: string; order_id: string; seqs: number[] }
  > = [];

  /** Whether there is nothing to write. */
  get empty(): boolean {
    return this.orders.size === 0 && this.byUser.size === 0 && this.executions.length === 0;
  }

  /** Records an order's latest snapshot. */
  order(userId: string, order: Order): this {
    this.orders.set(order.id, { user_id: userId, order });
    return this;
  }

  /** Appends a user's new events (in seq order). */
  events(userId: string, events: OrderEvent[]): this {
    if (events.length === 0) return this;
    const list = this.byUser.get(userId);
    if (list) list.push(...events);
    else this.byUser.set(userId, [...events]);
    return this;
  }

  /** Records that an exec_id was applied, producing `events`. */
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

/**
 * What a group's decision writes (store/report_group.ts): its orders, its events, and the
 * executions `keep` keeps (the fast statement leaves those with no events to the locked path).
 */
export function writeSetOf(
  decision: GroupDecision<unknown>,
  keep: (x: GroupDecision<unknown>["executions"][number]) => boolean = () => true,
): WriteSet {
  const changes = new WriteSet();
  for (const { user_id, order } of decision.orders.values()) changes.order(user_id, order);
  for (const [user, events] of decision.events) changes.events(user, events);
  for (const x of decision.executions) {
    if (keep(x)) changes.execution(x.exec_id, x.user_id, x.order_id, x.events);
  }
  return changes;
}

/**
 * The rows a `WriteSet` writes, column by column, as the parameters both write statements unnest
 * (wire.ts: array literals, and the JSON bodies as records). Each JSON body travels as its own
 * text, parsed once by Postgres where it is stored; a `json` array taken apart with `->` would be
 * parsed again for every field read out of it (a dozen times per report: half of Postgres' CPU
 * per report in large groups; bench/README.md, second pass).
 */
export function writeSetRows(c: WriteSet) {
  const o = {
    ids: [] as string[],
    users: [] as string[],
    clientIds: [] as (string | null)[],
    finals: [] as boolean[],
    bodies: [] as string[],
  };
  for (const { user_id, order } of c.orders.values()) {
    o.ids.push(order.id);
    o.users.push(user_id);
    o.clientIds.push(order.client_order_id);
    o.finals.push(isFinal(order.status));
    o.bodies.push(jsonOf(order));
  }
  const e = {
    users: [] as string[],
    seqs: [] as number[],
    orderIds: [] as string[],
    ats: [] as string[],
    bodies: [] as string[],
  };
  for (const [u, es] of c.byUser) {
    for (const event of es) {
      e.users.push(u);
      e.seqs.push(event.seq);
      e.orderIds.push(event.order.id);
      e.ats.push(event.at);
      e.bodies.push(jsonOf(event));
    }
  }
  const x = {
    ids: [] as string[],
    users: [] as string[],
    orderIds: [] as string[],
    seqs: [] as string[],
  };
  for (const ex of c.executions) {
    x.ids.push(ex.exec_id);
    x.users.push(ex.user_id);
    x.orderIds.push(ex.order_id);
    x.seqs.push(`{${ex.seqs.join(",")}}`);
  }
  const users = [...c.byUser.keys()];
  return {
    /** The users written, in the order of `users` and `lastSeqs` below. */
    userList: users,
    orders: {
      ids: bareArray(o.ids),
      users: quotedArray(o.users),
      clientIds: quotedArray(o.clientIds),
      finals: boolArray(o.finals),
      bodies: records(o.bodies),
    },
    events: {
      users: quotedArray(e.users),
      seqs: bareArray(e.seqs),
      orderIds: bareArray(e.orderIds),
      ats: bareArray(e.ats),
      bodies: records(e.bodies),
    },
    users: quotedArray(users),
    lastSeqs: bareArray(users.map((u) => c.byUser.get(u)!.at(-1)!.seq)),
    executions: {
      ids: quotedArray(x.ids),
      users: quotedArray(x.users),
      orderIds: bareArray(x.orderIds),
      seqs: quotedArray(x.seqs),
    },
  };
}

/**
 * Every write of a transaction as one statement: the orders' snapshots, the events, each user's
 * seq, each exec_id's first answer and the NOTIFYs (delivered at commit, to every instance).
 */
export function recordWriteSet(ctx: PgContext, tx: Tx, c: WriteSet): Promise<unknown> {
  const { orders: o, events: e, users, lastSeqs, executions: x } = writeSetRows(c);
  return tx`
    with o as (
      insert into orders (id, user_id, client_order_id, final, body)
      select id, u, c, f, b::json
      from unnest(${o.ids}::uuid[], ${o.users}::text[], ${o.clientIds}::text[],
                  ${o.finals}::boolean[], string_to_array(${o.bodies}, chr(30)))
        as v(id, u, c, f, b)
      on conflict (id) do update set final = excluded.final, body = excluded.body
    ), e as (
      insert into order_events (user_id, seq, order_id, at, body)
      select u, seq, oid, at, b::json
      from unnest(${e.users}::text[], ${e.seqs}::bigint[], ${e.orderIds}::uuid[],
                  ${e.ats}::timestamptz[], string_to_array(${e.bodies}, chr(30)))
        as v(u, seq, oid, at, b)
    ), s as (
      update user_seqs u set seq = v.seq
      from unnest(${users}::text[], ${lastSeqs}::bigint[]) as v(user_id, seq)
      where u.user_id = v.user_id
    ), x as (
      insert into executions (exec_id, user_id, order_id, seqs)
      select id, u, oid, s::bigint[]
      from unnest(${x.ids}::text[], ${x.users}::text[], ${x.orderIds}::uuid[],
                  ${x.seqs}::text[]) as v(id, u, oid, s)
    )
    select pg_notify(${ctx.channel}, p)
    from unnest(string_to_array(${records(eventNotices(ctx, c.byUser))}, chr(30))) as p`;
}

/**
 * The NOTIFYs a write statement sends for its events: none with the bus, which carries them after
 * the commit instead (`publishOwn`), so no write takes Postgres' commit-time NOTIFY lock.
 */
export function eventNotices(ctx: PgContext, byUser: Map<string, OrderEvent[]>): string[] {
  return ctx.bus ? [] : notices(ctx, byUser);
}

/**
 * Hands committed events to this instance's own change listeners at once (the same path the
 * feed delivers on), instead of waiting for its NOTIFY to come back from Postgres; with the bus,
 * publishes them there for the other instances too.
 */
export function publishOwn(
  ctx: PgContext,
  byUser: Iterable<[string, OrderEvent[]]>,
  replayed = false,
): void {
  const batch: UserEvent[] = [];
  for (const [user_id, events] of byUser) {
    for (const event of events) batch.push({ user_id, event });
    ctx.bus?.publishEvents(user_id, events);
  }
  ctx.changes.publish(batch, replayed);
}

/**
 * After a write whose answer was lost (it may have committed): its events would reach this
 * instance's listeners neither at commit nor by NOTIFY (its own are skipped), so they catch up
 * from the log as after a reconnect. While the feed is down its reconnect does that anyway. With
 * the bus nobody was told, so every instance is asked to catch up.
 */
export function resync(ctx: PgContext): void {
  if (ctx.closed) return;
  ctx.changes.resync();
  ctx.bus?.broadcast({ k: "resync" });
}
