/**
 * The decision for a group of the venue's reports, shared by every write path that applies them
 * together (Postgres' fast statement and locked path, KV's groups): each report in turn, on the
 * state the reports before it left — a duplicate exec_id in the group is the first copy's answer;
 * an exec_id applied before the group is its first result; an unknown order is a 404; the
 * lifecycle decides the rest, and an order a report replaces is known to the reports after it.
 * Pure: the caller reads what `GroupLookup` answers, and writes what the decision holds.
 */
import { AppError } from "../orders/errors.ts";
import { uuidv7 } from "../orders/ids.ts";
import * as lifecycle from "../orders/lifecycle.ts";
import type { ExecutionReport, Order, OrderEvent } from "../orders/model.ts";
import { eventsFromSteps, orderNotFound } from "./common.ts";
import type { ApplyResult } from "./store.ts";

/** One report of a group, as the group runner holds it. */
export interface GroupedReport {
  report: ExecutionReport;
  /** When it arrived: its events' time. */
  now: Date;
}

/** What the decision reads: the state before the group, as the caller read (or cached) it. */
export interface GroupLookup<First> {
  /** An order with its owner; undefined when unknown (or not known to the caller). */
  order(orderId: string): { user_id: string; order: Order } | undefined;
  /** A user's seq before the group (an owner `order` answered). */
  seq(userId: string): number;
  /** What is kept of an exec_id applied before the group, if it was (the caller's to read). */
  firstTime(execId: string): First | undefined;
}

/** How one report was decided. */
export type ReportDecision<First> =
  /** Applied: its events (possibly none) and answer. */
  | { kind: "applied"; result: ApplyResult }
  /** The same exec_id earlier in this group: that copy's answer, marked a duplicate. */
  | { kind: "repeat"; result: ApplyResult }
  /** An exec_id applied before this group: the caller answers its first result. */
  | { kind: "stored"; first: First; order: Order | undefined }
  /** The order is unknown, or the lifecycle refused the report: nothing of it is written. */
  | { kind: "unknown" | "refused"; error: AppError };

/** An order the group wrote: its owner, its state after the group, and before (null: new). */
export interface WrittenOrder {
  user_id: string;
  order: Order;
  before: Order | null;
}

/** A group's decision: one per report (same index), and what to write. */
export interface GroupDecision<First> {
  decisions: ReportDecision<First>[];
  /** Each user who has new events, with the seq before the group (the write's condition). */
  fromSeq: Map<string, number>;
  /** Each user's new events, in seq order. */
  events: Map<string, OrderEvent[]>;
  /** Every order the group changed, at its last state in the group. */
  orders: Map<string, WrittenOrder>;
  /** Each applied report's exec_id with its owner, order and event seqs (the duplicate check). */
  executions: Array<{ exec_id: string; user_id: string; order_id: string; events: OrderEvent[] }>;
}

/** Decides a group of reports in arrival order (see the module comment). */
export function decideGroup<First>(
  group: ReadonlyArray<GroupedReport>,
  lookup: GroupLookup<First>,
): GroupDecision<First> {
  const decision: GroupDecision<First> = {
    decisions: [],
    fromSeq: new Map(),
    events: new Map(),
    orders: new Map(),
    executions: [],
  };
  /** Each user's seq as this group has left it so far. */
  const seqs = new Map<string, number>();
  const inGroup = new Map<string, ApplyResult>();
  const current = (orderId: string) => {
    const written = decision.orders.get(orderId);
    return written ?? lookup.order(orderId);
  };
  for (const { report, now } of group) {
    const earlier = inGroup.get(report.exec_id);
    if (earlier) {
      decision.decisions.push({ kind: "repeat", result: { ...earlier, duplicate: true } });
      continue;
    }
    const known = current(report.order_id);
    const first = lookup.firstTime(report.exec_id);
    if (first !== undefined) {
      decision.decisions.push({ kind: "stored", first, order: known?.order });
      continue;
    }
    if (!known) {
      decision.decisions.push({ kind: "unknown", error: orderNotFound(report.order_id) });
      continue;
    }
    const owner = known.user_id;
    const outcome = lifecycle.applyReport(known.order, report, {
      now,
      newId: () => uuidv7(now.getTime()),
    });
    if ("refused" in outcome) {
      decision.decisions.push({
        kind: "refused",
        error: new AppError(outcome.code, outcome.refused),
      });
      continue;
    }
    const from = seqs.get(owner) ?? lookup.seq(owner);
    const events = eventsFromSteps(outcome.steps, from + 1, now);
    if (events.length > 0) {
      if (!decision.fromSeq.has(owner)) decision.fromSeq.set(owner, from);
      seqs.set(owner, events[events.length - 1].seq);
      const theirs = decision.events.get(owner);
      if (theirs) theirs.push(...events);
      else decision.events.set(owner, [...events]);
    }
    for (const { order } of outcome.steps) {
      // A replacement is known from here on, for the reports after this one.
      const before = decision.orders.get(order.id)?.before ?? lookup.order(order.id)?.order ?? null;
      decision.orders.set(order.id, { user_id: owner, order, before });
    }
    decision.executions.push({
      exec_id: report.exec_id,
      user_id: owner,
      order_id: known.order.id,
      events,
    });
    const result = { user_id: owner, order: outcome.order, events, duplicate: false };
    inGroup.set(report.exec_id, result);
    decision.decisions.push({ kind: "applied", result });
  }
  return decision;
}
