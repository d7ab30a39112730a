/**
 * The KV store's reads: order snapshots, one user's list (from the ["uo", …] indexes, newest
 * first, paged by an opaque cursor), an order's events, and the per-user event log with its
 * retention.
 */
import { AppError } from "../../orders/errors.ts";
import { withEventId } from "../../orders/event_id.ts";
import { isFinal, type Order, type OrderEvent, type UserEvent } from "../../orders/model.ts";
import { decodeCursor, pageOf } from "../common.ts";
import type { EventLog, OrderStore } from "../store.ts";
import { getEvents, type OrderRecord } from "./keys.ts";

/** The order reads of OrderStore on KV. */
export type KvOrderReads = Pick<
  OrderStore,
  "getOrder" | "listOrders" | "orderEvents" | "workingOrders" | "orderOwner"
>;

/** How often a list is read again when a commit lands between its seq and its rows. */
const LIST_TRIES = 20;

/** getOrder, listOrders, orderEvents, workingOrders and orderOwner. */
export function kvOrderReads(kv: Deno.Kv): KvOrderReads {
  return {
    async getOrder(userId, orderId) {
      const rec = await kv.get<OrderRecord>(["order", orderId]);
      return rec.value && rec.value.user_id === userId ? rec.value.order : null;
    },

    async listOrders(userId, options) {
      const prefix = ["uo", userId, options.status];
      const selector: Deno.KvListSelector = options.cursor
        ? { prefix, end: [...prefix, decodeCursor(options.cursor)] }
        : { prefix };
      // A list is not one snapshot with a get, but every change to a user's orders moves the
      // user's seq in the same atomic commit: the same seq before and after the list means no
      // commit came between, so the rows reflect exactly that seq. A commit in between: again,
      // after a pause that lets a busy user's next commit land first (seen: ten tries in a row
      // lost to a venue committing back to back). Never a wrong pair: past LIST_TRIES, a 503.
      for (let attempt = 0; attempt < LIST_TRIES; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(attempt, 10)));
        const before = await kv.get<number>(["seq", userId]);
        const orders: Order[] = [];
        const list = kv.list<Order>(selector, { reverse: true, limit: options.limit + 1 });
        for await (const entry of list) orders.push(entry.value);
        const after = await kv.get<number>(["seq", userId]);
        if (after.versionstamp === before.versionstamp) {
          return pageOf(orders, options.limit, before.value ?? 0);
        }
      }
      throw new AppError(
        "unavailable",
        "The orders are changing too fast to list at one point; retry shortly",
        { retry_after_s: 1 },
      );
    },

    async orderEvents(userId, orderId) {
      const keys: Deno.KvKey[] = [];
      for await (const e of kv.list<string>({ prefix: ["oe", orderId] })) {
        if (e.value !== userId) return [];
        keys.push(["ev", userId, e.key[2] as number]);
      }
      return await getEvents(kv, keys);
    },

    async workingOrders(limit) {
      const out: OrderRecord[] = [];
      for await (const e of kv.list<string>({ prefix: ["working"] }, { limit })) {
        const rec = await kv.get<OrderRecord>(["order", e.key[1] as string]);
        if (rec.value && !isFinal(rec.value.order.status)) out.push(rec.value);
      }
      return out;
    },

    async orderOwner(orderId) {
      return (await kv.get<OrderRecord>(["order", orderId])).value?.user_id ?? null;
    },
  };
}

/** The event log on KV. */
export function kvEventLog(kv: Deno.Kv): EventLog {
  async function eventsSince(
    userId: string,
    afterSeq: number,
    limit: number,
  ): Promise<OrderEvent[]> {
    const out: OrderEvent[] = [];
    const iter = kv.list<OrderEvent>(
      { prefix: ["ev", userId], start: ["ev", userId, afterSeq + 1] },
      { limit, batchSize: Math.min(limit, 500) },
    );
    // Events committed before ids had tags get their derived id (orders/event_id.ts).
    for await (const e of iter) out.push(withEventId(e.value));
    return out;
  }

  async function currentSeq(userId: string): Promise<number> {
    return (await kv.get<number>(["seq", userId])).value ?? 0;
  }

  return {
    eventsSince,
    currentSeq,

    async eventsSinceMany(positions, limitPerUser) {
      const out: UserEvent[] = [];
      for (const p of positions) {
        for (const event of await eventsSince(p.user_id, p.after_seq, limitPerUser)) {
          out.push({ user_id: p.user_id, event });
        }
      }
      return out;
    },

    async oldestSeq(userId) {
      for await (const e of kv.list({ prefix: ["ev", userId] }, { limit: 1 })) {
        return e.key[2] as number;
      }
      return null;
    },

    async pruneEvents(before) {
      const cutoff = before.toISOString();
      let pruned = 0;
      let op = kv.atomic();
      let pending = 0;
      for await (const e of kv.list<OrderEvent>({ prefix: ["ev"] })) {
        const [, userId, seq] = e.key as [string, string, number];
        if (e.value.at >= cutoff) continue;
        // Never a user's latest event: currentSeq and resume keep working from it.
        if (seq >= await currentSeq(userId)) continue;
        op.delete(e.key).delete(["oe", e.value.order.id, seq]);
        pruned++;
        if (++pending >= 400) {
          await op.commit();
          op = kv.atomic();
          pending = 0;
        }
      }
      if (pending > 0) await op.commit();
      return pruned;
    },
  };
}
