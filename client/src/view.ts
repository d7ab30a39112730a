/**
 * The user's order view: every order by id, and the position it is exact at (the last event
 * applied). Events apply once, in seq order: an event at or before the position is one the view
 * already has; one past the next seq is a gap, which the view never skips or applies early (the
 * caller refills it from a fresh list).
 */
import type { Order, OrderEvent } from "./types.ts";

/** What applying an event did. */
export type Applied = "applied" | "duplicate" | "gap";

/** The seq of an event id (`SEQ.TAG` or a bare `SEQ`); 0 for none. */
export function seqOf(id: string | null): number {
  return id === null ? 0 : Number(id.split(".")[0]) || 0;
}

/** Orders by id, exact as of `lastEventId`. */
export class OrderView {
  #orders = new Map<string, Order>();
  /** The id of the last event the view reflects (`SEQ.TAG`), or null before the first. */
  lastEventId: string | null = null;

  /** Replaces the whole view with a fresh list read at `lastEventId`. */
  replace(orders: Order[], lastEventId: string | null): void {
    this.#orders = new Map(orders.map((o) => [o.id, o]));
    this.lastEventId = lastEventId;
  }

  /** Applies one event if it is the next; says what it did. */
  apply(event: OrderEvent): Applied {
    const last = seqOf(this.lastEventId);
    if (event.seq <= last) return "duplicate";
    if (event.seq !== last + 1) return "gap";
    this.#orders.set(event.order.id, event.order);
    this.lastEventId = event.id;
    return "applied";
  }

  /** Orders, newest first: all of them, the working ones, or the ended ones. */
  orders(filter: "open" | "closed" | "all" = "all"): Order[] {
    const all = [...this.#orders.values()].filter((o) =>
      filter === "all" || (filter === "open") === !FINAL.has(o.status)
    );
    return all.sort((
      a,
      b,
    ) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  }

  /** One order, if the view has it. */
  order(id: string): Order | undefined {
    return this.#orders.get(id);
  }

  /** The view as plain JSON, for the storage hook. */
  toJSON(): { lastEventId: string | null; orders: Order[] } {
    return { lastEventId: this.lastEventId, orders: [...this.#orders.values()] };
  }
}

/** Statuses after which an order changes no more. */
const FINAL = new Set(["filled", "canceled", "rejected", "expired", "replaced"]);
