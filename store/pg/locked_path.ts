/**
 * The locked path of the report groups (reports.ts): under the owners' counter-row locks, a fresh
 * read of the group's orders and exec_ids, the lifecycle applied to each report in turn, and the
 * one write that records it all. What the fast path (fast_write.ts) cannot decide comes here.
 */
import { AppError } from "../../orders/errors.ts";
import { uuidv7 } from "../../orders/ids.ts";
import * as lifecycle from "../../orders/lifecycle.ts";
import type { Order, OrderEvent } from "../../orders/model.ts";
import { eventsFromSteps, orderNotFound } from "../common.ts";
import type { ApplyResult } from "../store.ts";
import { Changes, writeChanges } from "./changes.ts";
import type { PgContext, Tx } from "./connect.ts";
import type { PendingReport } from "./fast_write.ts";

/** The owners' counter rows a group locked, with each order's owner. */
export type Locked = { user_id: string; seq: string; order_id: string };

/** A locked group's answers, what the cache learns from it, and its events per user. */
export interface LockedResult {
  answers: Array<ApplyResult | Error>;
  learned: Array<{ user: string; from: number; to: number; orders: Order[] }>;
  byUser: Map<string, OrderEvent[]>;
}

/**
 * The locked path's decision, under the owners' locks: reads the orders, applies each report in
 * turn, returns the answers and the write.
 */
export async function decideLocked(
  ctx: PgContext,
  tx: Tx,
  group: PendingReport[],
  locked: Locked[],
): Promise<{ result: LockedResult; write?: Promise<unknown> }> {
  const owners = new Map<string, string>();
  const seqs = new Map<string, number>();
  for (const l of locked) {
    owners.set(l.order_id, l.user_id);
    seqs.set(l.user_id, Number(l.seq));
  }
  const fromSeq = new Map(seqs);
  // A fresh snapshot, taken under the locks: a concurrent copy of any of these reports has
  // committed or never will, and each order is as its last writer left it.
  const [orderRows, execRows] = await Promise.all([
    tx<{ body: Order }[]>`select body from orders where id = any(${[...owners.keys()]}::uuid[])`,
    // An index lookup however small `executions` was when the writer planned it (writers rule
    // out sequential scans, transaction.ts): a generic plan made while it was small scanned it,
    // and the scan grew with the table (3 ms a group after 20 s at 1,000 reports/s).
    tx<{ exec_id: string; user_id: string; seqs: string[] }[]>`
      select exec_id, user_id, seqs from executions
      where exec_id = any(${group.map((p) => p.report.exec_id)}::text[])`,
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
      result.push(await firstResult(tx, first.user_id, first.seqs.map(Number), order));
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
  // What the cache learns: every order read or written here is as of the user's last seq.
  const learned = [...fromSeq].map(([user, from]) => ({
    user,
    from,
    to: seqs.get(user)!,
    orders: [...orders.values()].filter((o) => owners.get(o.id) === user),
  }));
  return {
    result: { answers: result, learned, byUser: changes.byUser },
    write: changes.empty ? undefined : writeChanges(ctx, tx, changes),
  };
}

/** The answer an exec_id got the first time, for a duplicate. */
async function firstResult(
  tx: Tx,
  userId: string,
  seqs: number[],
  order: Order,
): Promise<ApplyResult> {
  const rows = seqs.length === 0 ? [] : await tx<{ body: OrderEvent }[]>`
    select body from order_events where user_id = ${userId} and seq = any(${seqs})
    order by seq`;
  const events = rows.map((r) => r.body);
  return { user_id: userId, order: events[0]?.order ?? order, events, duplicate: true };
}
