/**
 * Reads and paging on Postgres: order snapshots, one user's list (keyset-paged by UUIDv7 id, the
 * cursor is opaque), an order's events, and the per-user event log (`eventsSince*`, seqs,
 * retention). Everything here is one statement on the query pool.
 */
import { withEventId } from "../../orders/event_id.ts";
import type { Order, OrderEvent } from "../../orders/model.ts";
import { decodeCursor, pageOf } from "../common.ts";
import type { EventLog, OrderStore } from "../store.ts";
import { type PgContext, query } from "./connect.ts";

/** The order reads of OrderStore, on Postgres. */
export type PgOrderReads = Pick<
  OrderStore,
  "getOrder" | "listOrders" | "orderEvents" | "workingOrders" | "orderOwner"
>;

/** getOrder, listOrders, orderEvents, workingOrders and orderOwner. */
export function pgOrderReads(ctx: PgContext): PgOrderReads {
  return {
    async getOrder(userId, orderId) {
      const [row] = await query(
        ctx,
        (sql) =>
          sql<
            { body: Order }[]
          >`select body from orders where id = ${orderId} and user_id = ${userId}`,
      );
      return row?.body ?? null;
    },

    async listOrders(userId, options) {
      const before = options.cursor ? decodeCursor(options.cursor) : null;
      // One statement, so one snapshot: the seq is the one these rows reflect (a snapshot and
      // its event commit together). The seq row comes even when there are no orders.
      const rows = await query(ctx, (sql) =>
        sql<{ seq: string | null; body: Order | null }[]>`
          select s.seq, o.body
          from (select (select seq from user_seqs where user_id = ${userId}) as seq) s
          left join lateral (
            select id, body from orders
            where user_id = ${userId}
              ${options.status === "all" ? sql`` : sql`and final = ${options.status === "closed"}`}
              ${before ? sql`and id < ${before}` : sql``}
            order by id desc
            limit ${options.limit + 1}
          ) o on true
          order by o.id desc`);
      const orders = rows.flatMap((r) => (r.body ? [r.body] : []));
      return pageOf(orders, options.limit, Number(rows[0]?.seq ?? 0));
    },

    async orderEvents(userId, orderId) {
      const rows = await query(ctx, (sql) =>
        sql<{ body: OrderEvent }[]>`
          select body from order_events where order_id = ${orderId} and user_id = ${userId}
          order by seq`);
      return rows.map((r) => withEventId(r.body));
    },

    async workingOrders(limit) {
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string; body: Order }[]>`
          select user_id, body from orders where not final order by id limit ${limit}`);
      return rows.map((r) => ({ user_id: r.user_id, order: r.body }));
    },

    async orderOwner(orderId) {
      const [row] = await query(
        ctx,
        (sql) => sql<{ user_id: string }[]>`select user_id from orders where id = ${orderId}`,
      );
      return row?.user_id ?? null;
    },
  };
}

/** The event log on Postgres. */
export function pgEventLog(ctx: PgContext): EventLog {
  return {
    async eventsSince(userId, afterSeq, limit) {
      const rows = await query(ctx, (sql) =>
        sql<{ body: OrderEvent }[]>`
          select body from order_events where user_id = ${userId} and seq > ${afterSeq}
          order by seq limit ${limit}`);
      return rows.map((r) => withEventId(r.body));
    },

    async eventsSinceMany(positions, limitPerUser) {
      if (positions.length === 0) return [];
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string; body: OrderEvent }[]>`
          select p.user_id, e.body
          from unnest(${positions.map((p) => p.user_id)}::text[],
                      ${positions.map((p) => p.after_seq)}::bigint[]) as p(user_id, after_seq)
          cross join lateral (
            select body, seq from order_events
            where user_id = p.user_id and seq > p.after_seq
            order by seq limit ${limitPerUser}
          ) e
          order by p.user_id, e.seq`);
      return rows.map((r) => ({ user_id: r.user_id, event: withEventId(r.body) }));
    },

    async currentSeq(userId) {
      const [row] = await query(
        ctx,
        (sql) => sql<{ seq: string }[]>`select seq from user_seqs where user_id = ${userId}`,
      );
      return row ? Number(row.seq) : 0;
    },

    async oldestSeq(userId) {
      const [row] = await query(ctx, (sql) =>
        sql<
          { seq: string | null }[]
        >`select min(seq) as seq from order_events where user_id = ${userId}`);
      return row?.seq == null ? null : Number(row.seq);
    },

    async pruneEvents(before) {
      const result = await query(ctx, (sql) =>
        sql`
          delete from order_events e using user_seqs s
          where e.user_id = s.user_id and e.at < ${before} and e.seq < s.seq`);
      await query(ctx, (sql) => sql`delete from alert_claims where claimed_at < ${before}`);
      return result.count;
    },
  };
}
