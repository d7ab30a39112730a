/**
 * The KV store's write path: placing an order, the user's cancel/replace, and the venue's
 * reports. Each is one atomic operation guarded by versionstamp checks on the user's seq counter
 * and the order (so per-user seq is gapless even if two processes share the file), retried when
 * another process won the race, queued per user on the mutex within this one, and published to
 * the in-process listeners after commit. Reports are group-committed (report_groups.ts).
 */
import { uuidv7 } from "../../orders/ids.ts";
import * as lifecycle from "../../orders/lifecycle.ts";
import type { ExecutionReport } from "../../orders/model.ts";
import {
  acceptedOrThrow,
  decideUserAction,
  eventsFromSteps,
  orderNotFound,
  type UserActionRunner,
  userActions,
} from "../common.ts";
import type { ApplyResult, OrderStore, PlaceResult } from "../store.ts";
import {
  commitOrBusy,
  type ExecRecord,
  getEvents,
  type KvContext,
  MAX_ATTEMPTS,
  type OrderRecord,
  storeBusy,
  writeEvents,
  writeOrder,
} from "./keys.ts";
import { KvReportGroups } from "./report_groups.ts";

/** The order writes of OrderStore on KV; `orderEvents` answers a repeated client_order_id. */
export function kvWrites(
  ctx: KvContext,
  reads: Pick<OrderStore, "orderEvents" | "orderOwner">,
): Pick<OrderStore, "placeOrder" | "requestCancel" | "requestReplace" | "applyReport"> {
  const { kv, changes, mutex } = ctx;

  /** A user's request on their own order (cancel, replace): one atomic step like a report. */
  const userAction: UserActionRunner = (userId, orderId, decide, now) =>
    mutex.run(userId, async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const [orderEntry, seqEntry] = await kv.getMany<[OrderRecord, number]>([
          ["order", orderId],
          ["seq", userId],
        ]);
        if (!orderEntry.value || orderEntry.value.user_id !== userId) {
          throw orderNotFound(orderId);
        }
        const order = orderEntry.value.order;
        const result = decideUserAction(userId, order, decide, seqEntry.value ?? 0, now);
        if (result.events.length === 0) return result;
        const op = kv.atomic().check(orderEntry, seqEntry);
        writeOrder(op, userId, result.order, order);
        writeEvents(op, userId, result.events);
        if (!(await commitOrBusy(op)).ok) continue;
        changes.publish(result.events.map((event) => ({ user_id: userId, event })));
        return result;
      }
      throw storeBusy();
    });

  /** The first result of an exec_id seen before. */
  async function duplicateOf(rec: ExecRecord): Promise<ApplyResult> {
    const events = await getEvents(kv, rec.seqs.map((seq) => ["ev", rec.user_id, seq]));
    // The first result's snapshot; if its events were pruned, the order as it is now.
    const order = events[0]?.order ??
      (await kv.get<OrderRecord>(["order", rec.order_id])).value!.order;
    return { user_id: rec.user_id, order, events, duplicate: true };
  }

  const groups = new KvReportGroups(ctx, {
    applyOne: applyOneFor(ctx, reads, duplicateOf).applyReport,
    duplicateOf,
  });

  return {
    placeOrder(userId, request, now): Promise<PlaceResult> {
      return mutex.run(userId, async () => {
        for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
          const coidKey = request.client_order_id === null
            ? null
            : ["coid", userId, request.client_order_id];
          const [seqEntry, coidEntry] = await kv.getMany<[number, string]>([
            ["seq", userId],
            coidKey ?? ["coid", userId, ""],
          ]);
          if (coidKey && coidEntry.value) {
            const existing = await kv.get<OrderRecord>(["order", coidEntry.value]);
            if (existing.value) {
              const events = await reads.orderEvents(userId, existing.value.order.id);
              return {
                user_id: userId,
                order: existing.value.order,
                events: events.slice(0, 1),
                created: false,
              };
            }
          }
          const step = lifecycle.newOrder(request, uuidv7(now.getTime()), now);
          const seq = seqEntry.value ?? 0;
          const events = eventsFromSteps([step], seq + 1, now);
          const op = kv.atomic().check(seqEntry);
          if (coidKey) op.check(coidEntry).set(coidKey, step.order.id);
          writeOrder(op, userId, step.order, null);
          writeEvents(op, userId, events);
          const res = await commitOrBusy(op);
          if (!res.ok) continue;
          changes.publish(events.map((event) => ({ user_id: userId, event })));
          return { user_id: userId, order: step.order, events, created: true };
        }
        throw storeBusy();
      });
    },

    ...userActions(userAction),

    applyReport: (report, now) => groups.applyReport(report, now),
  };
}

/** One report applied alone, in its own atomic step (what a group falls back to). */
function applyOneFor(
  ctx: KvContext,
  reads: Pick<OrderStore, "orderOwner">,
  duplicateOf: (rec: ExecRecord) => Promise<ApplyResult>,
) {
  const { kv, changes, mutex } = ctx;
  return {
    async applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
      const first = (await kv.get<ExecRecord>(["exec", report.exec_id])).value;
      if (first) return await duplicateOf(first);
      const owner = await reads.orderOwner(report.order_id);
      if (!owner) throw orderNotFound(report.order_id);
      return await mutex.run(owner, async () => {
        for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
          const [execEntry, orderEntry, seqEntry] = await kv.getMany<
            [ExecRecord, OrderRecord, number]
          >([["exec", report.exec_id], ["order", report.order_id], ["seq", owner]]);
          if (execEntry.value) return await duplicateOf(execEntry.value);
          if (!orderEntry.value) throw orderNotFound(report.order_id);
          const order = orderEntry.value.order;
          const outcome = acceptedOrThrow(lifecycle.applyReport(order, report, {
            now,
            newId: () => uuidv7(now.getTime()),
          }));
          const steps = outcome.steps;
          const events = eventsFromSteps(steps, (seqEntry.value ?? 0) + 1, now);
          const op = kv.atomic().check(execEntry, orderEntry, seqEntry);
          const written = new Set<string>();
          // Write each order once, at its last state in this write (replace touches two orders).
          for (const s of [...steps].reverse()) {
            if (written.has(s.order.id)) continue;
            written.add(s.order.id);
            writeOrder(op, owner, s.order, s.order.id === order.id ? order : null);
          }
          writeEvents(op, owner, events);
          op.set(
            ["exec", report.exec_id],
            {
              user_id: owner,
              order_id: order.id,
              seqs: events.map((e) => e.seq),
            } satisfies ExecRecord,
          );
          const res = await commitOrBusy(op);
          if (!res.ok) continue;
          changes.publish(events.map((event) => ({ user_id: owner, event })));
          return { user_id: owner, order: outcome.order, events, duplicate: false };
        }
        throw storeBusy();
      });
    },
  };
}
