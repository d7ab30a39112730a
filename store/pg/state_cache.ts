/**
 * What this instance last knew of recent users, so that a report group can be decided without
 * reading Postgres first: per user, their seq and the snapshots of their orders as of that seq,
 * plus order id → owner. It is a hint, never the truth: the fast write (fast_write.ts) succeeds
 * only if every user's seq in Postgres is still the one cached, and a user's seq moves with every
 * write that changes one of their orders, so a stale entry makes the write fail as a whole and
 * the group goes through the locked path, which reads afresh.
 *
 * The invariant that makes that check enough: every snapshot in a user's entry is the order as it
 * was at the entry's seq. `learn` keeps it (it merges only a write that started from the cached
 * seq, and otherwise starts the entry over), and it never moves an entry back.
 *
 * Bounded: at most `cap` users (least recently used first out), their orders with them, and per
 * user only working orders, at most ORDERS_PER_USER of them (a user past that is not cached: their
 * groups take the locked path). A final order accepts no report, so it is dropped, not kept.
 */
import { isFinal, type Order } from "../../orders/model.ts";

/** How many users the cache keeps by default. */
export const STATE_CACHE_USERS = 50_000;
/** The most working orders one user's entry holds; a busier user is not cached at all. */
export const ORDERS_PER_USER = 1_000;

/** One user's state as this instance last saw it. */
interface UserState {
  seq: number;
  orders: Map<string, Order>;
}

/** A cached order: its owner, the owner's seq and the order as of that seq. */
export interface CachedOrder {
  user_id: string;
  seq: number;
  order: Order;
}

/** The LRU of users' seqs and order snapshots (see the module comment). */
export class StateCache {
  /** Users in least-recently-used order (a Map iterates in insertion order). */
  readonly #users = new Map<string, UserState>();
  readonly #owners = new Map<string, string>();

  constructor(readonly cap: number = STATE_CACHE_USERS) {}

  /** How many users are cached. */
  get size(): number {
    return this.#users.size;
  }

  /** The owner of an order, if known (owners never change). */
  owner(orderId: string): string | undefined {
    return this.#owners.get(orderId);
  }

  /** The cached state of an order, or undefined; marks its user as recently used. */
  lookup(orderId: string): CachedOrder | undefined {
    const userId = this.#owners.get(orderId);
    if (userId === undefined) return undefined;
    const state = this.#users.get(userId);
    const order = state?.orders.get(orderId);
    if (!state || !order) return undefined;
    this.#users.delete(userId);
    this.#users.set(userId, state);
    return { user_id: userId, seq: state.seq, order };
  }

  /**
   * Learns a user's state: `orders` as they are at `toSeq`, reached from `fromSeq` by a write
   * of this instance that touched only those orders (a read: `fromSeq === toSeq`). Merged into
   * the entry if the entry is at `fromSeq`; ignored if the entry is already past `toSeq`;
   * otherwise the entry starts over with only these orders.
   */
  learn(userId: string, fromSeq: number, toSeq: number, orders: Iterable<Order>): void {
    let state = this.#users.get(userId);
    if (state && state.seq > toSeq) return;
    if (state && state.seq !== fromSeq && state.seq !== toSeq) {
      this.forget(userId);
      state = undefined;
    }
    if (!state) state = { seq: toSeq, orders: new Map() };
    else this.#users.delete(userId);
    state.seq = toSeq;
    for (const order of orders) {
      if (isFinal(order.status)) {
        // Any report on it goes to the locked path (lifecycle accepts none): only memory to keep.
        state.orders.delete(order.id);
        this.#owners.delete(order.id);
        continue;
      }
      state.orders.set(order.id, order);
      this.#owners.set(order.id, userId);
    }
    this.#users.set(userId, state);
    if (state.orders.size > ORDERS_PER_USER) {
      this.forget(userId);
      return;
    }
    while (this.#users.size > this.cap) {
      const oldest = this.#users.keys().next().value as string;
      this.forget(oldest);
    }
  }

  /** Forgets a user (another instance wrote for them, or a write of theirs failed). */
  forget(userId: string): void {
    const state = this.#users.get(userId);
    if (!state) return;
    for (const id of state.orders.keys()) this.#owners.delete(id);
    this.#users.delete(userId);
  }

  /** Forgets everyone (the change feed reconnected: what changed meanwhile was not heard). */
  clear(): void {
    this.#users.clear();
    this.#owners.clear();
  }
}
