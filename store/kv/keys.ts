/**
 * The KV store's key layout and what every module of it shares: the context (the database, the
 * in-process change source, the per-user write mutex) and the writes of a snapshot and of events
 * that keep the indexes below in step.
 *
 * Keys:
 *   ["order", id]                    -> { user_id, order }        the snapshot
 *   ["uo", user, "all"|"open"|"closed", id] -> Order              list indexes, newest = largest id
 *   ["working", id]                  -> user_id                   not final (the simulator resumes)
 *   ["coid", user, client_order_id]  -> order id
 *   ["seq", user]                    -> number                    the user's latest seq
 *   ["ev", user, seq]                -> OrderEvent                the event log
 *   ["oe", order id, seq]            -> user                      an order's events
 *   ["exec", exec_id]                -> { user_id, order_id, seqs } idempotency
 *   ["session", id] / ["token", hash] -> id / ["us", user, id]   sessions
 *   ["push", endpoint] / ["up", user, endpoint]                 push subscriptions
 *   ["dev", sha256(token)] / ["ud", user, sha256(token)]        native push tokens
 *   ["alert", user, seq]                                          alert claims (expire)
 *   ["setting", key]
 */
import { withEventId } from "../../orders/event_id.ts";
import { AppError } from "../../orders/errors.ts";
import { isFinal, type Order, type OrderEvent } from "../../orders/model.ts";
import type { Logger } from "../../log.ts";
import type { Fallbacks, KeyedMutex } from "../common.ts";
import type { ChangeListeners } from "../change_listeners.ts";

/** An order's snapshot with its owner. */
export type OrderRecord = { user_id: string; order: Order };
/** What an exec_id produced the first time. */
export type ExecRecord = { user_id: string; order_id: string; seqs: number[] };

/** How many times a write is retried when another process changed what it read. */
export const MAX_ATTEMPTS = 50;

/** The answer after MAX_ATTEMPTS lost races: the client retries later. */
export function storeBusy(): AppError {
  return new AppError("unavailable", "The store is busy; try again");
}

/**
 * Commits; another handle holding the file's write lock (SQLite "database is locked", thrown as a
 * TypeError) is a lost race like a failed check: nothing was written, so after a short pause the
 * caller decides again from fresh reads. Every KV write with a retry loop commits through here, so
 * a contended shared file ends, after MAX_ATTEMPTS, in storeBusy() (503), never a raw error (500).
 */
export async function commitOrBusy(
  op: Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  try {
    return await op.commit();
  } catch (err) {
    if (!(err instanceof TypeError && /database is locked/.test(err.message))) throw err;
    await new Promise((r) => setTimeout(r, 1 + Math.random() * 10));
    return { ok: false } satisfies Deno.KvCommitError;
  }
}

/** What the modules of the KV store share. */
export interface KvContext {
  readonly kv: Deno.Kv;
  /** In-process: always connected; listeners hear commits in seq order. */
  readonly changes: ChangeListeners;
  /** Per-user writes of this process queue here instead of racing on versionstamps. */
  readonly mutex: KeyedMutex;
  readonly log: Logger;
  /** Report groups that could not go their first way, by why (/metrics). */
  readonly fallbacks: Fallbacks;
}

/** Sets an order's snapshot and keeps its list and working indexes in step with `prev`. */
export function writeOrder(
  op: Deno.AtomicOperation,
  userId: string,
  order: Order,
  prev: Order | null,
): void {
  op.set(["order", order.id], { user_id: userId, order } satisfies OrderRecord);
  op.set(["uo", userId, "all", order.id], order);
  const final = isFinal(order.status);
  op.set(["uo", userId, final ? "closed" : "open", order.id], order);
  if (prev && isFinal(prev.status) !== final) {
    op.delete(["uo", userId, final ? "open" : "closed", order.id]);
  }
  if (final) op.delete(["working", order.id]);
  // Set once, when it starts working (or again, should a final order ever work again).
  else if (!prev || isFinal(prev.status)) op.set(["working", order.id], userId);
}

/** Appends events to the user's log and their order's index, and moves the user's seq. */
export function writeEvents(op: Deno.AtomicOperation, userId: string, events: OrderEvent[]): void {
  for (const e of events) {
    op.set(["ev", userId, e.seq], e);
    op.set(["oe", e.order.id, e.seq], userId);
  }
  op.set(["seq", userId], events[events.length - 1].seq);
}

/** The events at these keys, in key order, in batches (getMany takes up to 10 keys). */
export async function getEvents(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<OrderEvent[]> {
  const out: OrderEvent[] = [];
  for (let i = 0; i < keys.length; i += 10) {
    const entries = await kv.getMany<OrderEvent[]>(keys.slice(i, i + 10));
    // Events committed before ids had tags get their derived id (orders/event_id.ts).
    for (const e of entries) if (e.value) out.push(withEventId(e.value));
  }
  return out;
}
