/**
 * What both stores share: turning the state machine's steps into numbered events, the opaque
 * paging cursor, and the refusals every backend answers the same way.
 */
import { AppError } from "../orders/errors.ts";
import { isUuid } from "../orders/ids.ts";
import type { Outcome, Step } from "../orders/lifecycle.ts";
import type { Order, OrderEvent } from "../orders/model.ts";

/** Numbers the steps of one write as events, starting at `firstSeq`. */
export function eventsFromSteps(steps: Step[], firstSeq: number, now: Date): OrderEvent[] {
  const at = now.toISOString();
  return steps.map((s, i) => {
    const event: OrderEvent = { seq: firstSeq + i, type: s.type, at, order: s.order };
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
    const tail = result.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
