/**
 * The locked path of the report groups (reports.ts): under the owners' counter-row locks, a fresh
 * read of the group's orders and exec_ids, the lifecycle applied to each report in turn, and the
 * one write that records it all. What the fast path (fast_write.ts) cannot decide comes here.
 */
import type { Order, OrderEvent } from "../../orders/model.ts";
import { orderNotFound } from "../common.ts";
import { decideGroup, type GroupedReport } from "../report_group.ts";
import type { ApplyResult } from "../store.ts";
import { recordWriteSet, writeSetOf } from "./write_set.ts";
import type { PgContext, Tx } from "./connect.ts";

/** The owners' counter rows a group locked, with each order's owner. */
export type Locked = { user_id: string; seq: string; order_id: string };

/** A locked group's answers, what the cache learns from it, and its events per user. */
export interface LockedResult {
  answers: Array<ApplyResult | Error>;
  learned: Array<{ user: string; from: number; to: number; orders: Order[] }>;
  byUser: Map<string, OrderEvent[]>;
  /** The events of exec_ids already stored before this group (resends), per user. */
  resent: Map<string, OrderEvent[]>;
}

/**
 * Locks the counter row of every owner of the group's orders, in user_id order so concurrent
 * groups (and the fast statement, which locks the same way) never deadlock; answers each order's
 * owner with the owner's seq.
 */
export function lockOwners(tx: Tx, group: GroupedReport[]) {
  return tx<Locked[]>`
    select s.user_id, s.seq, o.id as order_id
    from orders o join user_seqs s on s.user_id = o.user_id
    where o.id = any(${[...new Set(group.map((p) => p.report.order_id))]}::uuid[])
    order by s.user_id
    for update of s`;
}

/**
 * The locked path's decision, under the owners' locks: reads the orders and the exec_ids afresh,
 * decides the group (store/report_group.ts), returns the answers and the write.
 */
export async function decideLocked(
  ctx: PgContext,
  tx: Tx,
  group: GroupedReport[],
  locked: Locked[],
): Promise<{ result: LockedResult; write?: Promise<unknown> }> {
  const owners = new Map(locked.map((l) => [l.order_id, l.user_id]));
  const fromSeq = new Map(locked.map((l) => [l.user_id, Number(l.seq)]));
  // A fresh snapshot, taken under the locks: a concurrent copy of any of these reports has
  // committed or never will, and each order is as its last writer left it.
  const [orderRows, execRows] = await Promise.all([
    tx<{ body: Order }[]>`select body from orders where id = any(${[...owners.keys()]}::uuid[])`,
    // An index lookup however small `executions` was when the writer planned it (writers rule
    // out sequential scans, transaction.ts): a generic plan made while it was small scanned it,
    // and the scan grew with the table (3 ms a group after 20 s at 1,000 reports/s).
    tx<{ exec_id: string; user_id: string; order_id: string; seqs: string[] }[]>`
      select exec_id, user_id, order_id, seqs from executions
      where exec_id = any(${group.map((p) => p.report.exec_id)}::text[])`,
  ]);
  const orders = new Map(orderRows.map((r) => [r.body.id, r.body]));
  const firstTime = new Map(execRows.map((r) => [r.exec_id, r]));
  const decided = decideGroup(group, {
    order(orderId) {
      const order = orders.get(orderId);
      const user_id = owners.get(orderId);
      return order && user_id !== undefined ? { user_id, order } : undefined;
    },
    seq: (userId) => fromSeq.get(userId)!,
    firstTime: (execId) => firstTime.get(execId),
  });
  const resent = new Map<string, OrderEvent[]>();
  const answers = await Promise.all(decided.decisions.map(async (d) => {
    if (d.kind === "applied" || d.kind === "repeat") return d.result;
    if (d.kind !== "stored") return d.error;
    const first = await firstResult(tx, d.first, d.order);
    if (!(first instanceof Error) && first.events.length > 0) {
      resent.set(first.user_id, [...resent.get(first.user_id) ?? [], ...first.events]);
    }
    return first;
  }));
  // What the cache learns: every order read or written here is as of the user's last seq.
  for (const { user_id, order } of decided.orders.values()) {
    orders.set(order.id, order);
    owners.set(order.id, user_id);
  }
  const learned = [...fromSeq].map(([user, from]) => ({
    user,
    from,
    to: decided.events.get(user)?.at(-1)?.seq ?? from,
    orders: [...orders.values()].filter((o) => owners.get(o.id) === user),
  }));
  const changes = writeSetOf(decided);
  return {
    result: { answers, learned, byUser: changes.byUser, resent },
    write: changes.empty ? undefined : recordWriteSet(ctx, tx, changes),
  };
}

/** The answer an exec_id got the first time, for a duplicate. */
async function firstResult(
  tx: Tx,
  stored: { user_id: string; order_id: string; seqs: string[] },
  order: Order | undefined,
): Promise<ApplyResult | Error> {
  const seqs = stored.seqs.map(Number);
  const rows = seqs.length === 0 ? [] : await tx<{ body: OrderEvent }[]>`
    select body from order_events where user_id = ${stored.user_id} and seq = any(${seqs})
    order by seq`;
  const events = rows.map((r) => r.body);
  // The first result's snapshot; with its events gone (pruned, or none), the order as it is.
  const first = events[0]?.order ?? order;
  if (!first) return orderNotFound(stored.order_id);
  return { user_id: stored.user_id, order: first, events, duplicate: true };
}
