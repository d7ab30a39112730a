/**
 * What both stores share: turning the state machine's steps into numbered events, deciding a
 * user's action, the opaque paging cursor and its pages, and the refusals every backend answers
 * the same way.
 */
import { eventId, newTag } from "../orders/event_id.ts";
import { AppError } from "../orders/errors.ts";
import { isUuid } from "../orders/ids.ts";
import { type Outcome, requestCancel, requestReplace, type Step } from "../orders/lifecycle.ts";
import type { Order, OrderEvent } from "../orders/model.ts";
import type { OrderPage, OrderStore, WriteResult } from "./store.ts";

/** Numbers the steps of one write as events, starting at `firstSeq`. */
export function eventsFromSteps(steps: Step[], firstSeq: number, now: Date): OrderEvent[] {
  const at = now.toISOString();
  return steps.map((s, i) => {
    // The tag is drawn here, by every write path, and committed with the event (in its body).
    const seq = firstSeq + i;
    const event: OrderEvent = { id: eventId(seq, newTag()), seq, type: s.type, at, order: s.order };
    if (s.execution) event.execution = s.execution;
    if (s.reason !== undefined) event.reason = s.reason;
    if (s.requested) event.requested = s.requested;
    return event;
  });
}

/** Throws the refusal of an outcome as an AppError; returns the accepted outcome otherwise. */
export function acceptedOrThrow(outcome: Outcome): { order: Order; steps: Step[] } {
  if ("refused" in outcome) throw new AppError(outcome.code, outcome.refused);
  return outcome;
}

/** The 404 every store answers for an order that is unknown or someone else's. */
export function orderNotFound(orderId: string): AppError {
  return new AppError("not_found", `No order ${orderId}`);
}

/** The paging cursor: the last order id of the page, base64url, so clients treat it as opaque. */
export function encodeCursor(orderId: string): string {
  return btoa(orderId).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** Reads a cursor back; a cursor that is not ours is a 400, never a silent first page. */
export function decodeCursor(cursor: string): string {
  let id = "";
  try {
    id = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    // falls through to the check below
  }
  if (!isUuid(id)) throw new AppError("invalid_request", "cursor is not valid; start from page 1");
  return id.toLowerCase();
}

/** SHA-256 of a bearer token, hex: the only form in which tokens are stored. */
export async function hashToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Runs tasks one at a time per key (here: per user), in arrival order. Per-user writes in one
 * process queue here instead of racing on the store's optimistic checks.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every earlier task with the same key has settled. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const result = prev.then(task, task);
    // The chain only orders tasks; `result` carries the failure to this task's caller.
    const tail = result.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

/** How a backend runs one user action on one of their orders: decide on it, then write. */
export type UserActionRunner = (
  userId: string,
  orderId: string,
  decide: (order: Order) => Outcome,
  now: Date,
) => Promise<WriteResult>;

/** requestCancel and requestReplace, the same on every backend given how it runs an action. */
export function userActions(
  run: UserActionRunner,
): Pick<OrderStore, "requestCancel" | "requestReplace"> {
  return {
    requestCancel: (userId, orderId, now) =>
      run(userId, orderId, (order) => requestCancel(order, now), now),
    requestReplace: (userId, orderId, changes, now) =>
      run(userId, orderId, (order) => requestReplace(order, changes, now), now),
  };
}

/**
 * A user's action decided on their order as it is, with `seq` their latest: the answer, whose
 * events (none when nothing changes) take the next seqs. Throws the refusal as an AppError.
 */
export function decideUserAction(
  userId: string,
  order: Order,
  decide: (order: Order) => Outcome,
  seq: number,
  now: Date,
): WriteResult {
  const outcome = acceptedOrThrow(decide(order));
  if (outcome.steps.length === 0) return { user_id: userId, order, events: [] };
  return {
    user_id: userId,
    order: outcome.order,
    events: eventsFromSteps(outcome.steps, seq + 1, now),
  };
}

/**
 * One page from `limit + 1` orders read newest first (the extra one says another page exists),
 * with the user's seq read in the same snapshot.
 */
export function pageOf(orders: Order[], limit: number, lastSeq: number): OrderPage {
  const more = orders.length > limit;
  if (more) orders.pop();
  return {
    orders,
    next_cursor: more ? encodeCursor(orders[orders.length - 1].id) : null,
    last_seq: lastSeq,
  };
}

/**
 * Report groups that could not go their first way, by why: a group decided on a cache that
 * turned out stale, or one that failed as a whole and went report by report. Expected now and
 * then; a reason that climbs says a fast path is broken (`blotter_report_fallbacks_total`).
 */
export class Fallbacks {
  readonly #by = new Map<string, number>();

  /** Counts one fallback for `reason`. */
  add(reason: string): void {
    this.#by.set(reason, (this.#by.get(reason) ?? 0) + 1);
  }

  /** The counts so far, by reason. */
  counts(): ReadonlyMap<string, number> {
    return this.#by;
  }
}
