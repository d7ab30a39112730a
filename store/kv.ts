/**
 * The embedded store on Deno KV: what `deno task dev` and small installs run on, with nothing else
 * installed. Every write is one atomic operation guarded by versionstamp checks on the user's seq
 * counter and the order, so per-user seq is gapless even if two processes share the file; within
 * one process, writes of one user also queue on a mutex instead of retrying against each other.
 *
 * KV's `watch()` is not a change log (it coalesces and does not cross processes), so this store
 * publishes to its listeners in-process, after commit, in seq order.
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
 *   ["setting", key]
 */
import { AppError } from "../orders/errors.ts";
import { uuidv7 } from "../orders/ids.ts";
import * as lifecycle from "../orders/lifecycle.ts";
import {
  type ExecutionReport,
  isFinal,
  type Order,
  type OrderEvent,
  type OrderRequest,
  type ReplaceRequest,
  type UserEvent,
} from "../orders/model.ts";
import {
  acceptedOrThrow,
  decodeCursor,
  encodeCursor,
  eventsFromSteps,
  KeyedMutex,
  orderNotFound,
} from "./common.ts";
import type {
  ApplyResult,
  ChangeListener,
  ChangeSource,
  OrderPage,
  PlaceResult,
  PushSubscriptionRecord,
  Session,
  StatusFilter,
  Store,
  WriteResult,
} from "./store.ts";

type OrderRecord = { user_id: string; order: Order };
type ExecRecord = { user_id: string; order_id: string; seqs: number[] };

/** How many times a write is retried when another process changed what it read. */
const MAX_ATTEMPTS = 50;

/** Opens (or creates) the KV store at `path` (`:memory:` for tests). */
export async function openKvStore(path: string): Promise<Store> {
  if (path !== ":memory:") {
    const dir = path.replace(/[^/]*$/, "");
    if (dir) await Deno.mkdir(dir, { recursive: true });
  }
  return new KvStore(await Deno.openKv(path));
}

/** In-process change source: always connected; listeners hear commits in seq order. */
class LocalChanges implements ChangeSource {
  readonly connected = true;
  readonly #listeners = new Set<ChangeListener>();

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    listener.connected();
    return () => this.#listeners.delete(listener);
  }

  publish(events: UserEvent[]): void {
    if (events.length === 0) return;
    for (const l of this.#listeners) l.events(events);
  }

  revoked(sessionId: string, userId: string): void {
    for (const l of this.#listeners) l.sessionRevoked(sessionId, userId);
  }
}

class KvStore implements Store {
  readonly kind = "kv" as const;
  readonly #kv: Deno.Kv;
  readonly #changes = new LocalChanges();
  readonly #mutex = new KeyedMutex();
  readonly changes: ChangeSource = this.#changes;

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  // --- orders -----------------------------------------------------------------------------------

  placeOrder(userId: string, request: OrderRequest, now: Date): Promise<PlaceResult> {
    return this.#mutex.run(userId, async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const coidKey = request.client_order_id === null
          ? null
          : ["coid", userId, request.client_order_id];
        const [seqEntry, coidEntry] = await this.#kv.getMany<[number, string]>([
          ["seq", userId],
          coidKey ?? ["coid", userId, ""],
        ]);
        if (coidKey && coidEntry.value) {
          const existing = await this.#kv.get<OrderRecord>(["order", coidEntry.value]);
          if (existing.value) {
            const events = await this.orderEvents(userId, existing.value.order.id);
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
        const op = this.#kv.atomic().check(seqEntry);
        if (coidKey) op.check(coidEntry).set(coidKey, step.order.id);
        this.#writeOrder(op, userId, step.order, null);
        this.#writeEvents(op, userId, events);
        const res = await op.commit();
        if (!res.ok) continue;
        this.#changes.publish(events.map((event) => ({ user_id: userId, event })));
        return { user_id: userId, order: step.order, events, created: true };
      }
      throw new AppError("unavailable", "The store is busy; try again");
    });
  }

  requestCancel(userId: string, orderId: string, now: Date): Promise<WriteResult> {
    return this.#userAction(userId, orderId, (order) => lifecycle.requestCancel(order, now), now);
  }

  requestReplace(
    userId: string,
    orderId: string,
    changes: ReplaceRequest,
    now: Date,
  ): Promise<WriteResult> {
    return this.#userAction(
      userId,
      orderId,
      (order) => lifecycle.requestReplace(order, changes, now),
      now,
    );
  }

  async applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
    const first = await this.#duplicate(report.exec_id);
    if (first) return first;
    const owner = await this.orderOwner(report.order_id);
    if (!owner) throw orderNotFound(report.order_id);
    return await this.#mutex.run(owner, async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const [execEntry, orderEntry, seqEntry] = await this.#kv.getMany<
          [ExecRecord, OrderRecord, number]
        >([["exec", report.exec_id], ["order", report.order_id], ["seq", owner]]);
        if (execEntry.value) return await this.#duplicateOf(execEntry.value);
        if (!orderEntry.value) throw orderNotFound(report.order_id);
        const order = orderEntry.value.order;
        const outcome = acceptedOrThrow(lifecycle.applyReport(order, report, {
          now,
          newId: () => uuidv7(now.getTime()),
        }));
        const steps = outcome.steps;
        const events = eventsFromSteps(steps, (seqEntry.value ?? 0) + 1, now);
        const op = this.#kv.atomic().check(execEntry, orderEntry, seqEntry);
        const written = new Set<string>();
        // Write each order once, at its last state in this write (replace touches two orders).
        for (const s of [...steps].reverse()) {
          if (written.has(s.order.id)) continue;
          written.add(s.order.id);
          this.#writeOrder(op, owner, s.order, s.order.id === order.id ? order : null);
        }
        this.#writeEvents(op, owner, events);
        op.set(
          ["exec", report.exec_id],
          {
            user_id: owner,
            order_id: order.id,
            seqs: events.map((e) => e.seq),
          } satisfies ExecRecord,
        );
        const res = await op.commit();
        if (!res.ok) continue;
        this.#changes.publish(events.map((event) => ({ user_id: owner, event })));
        return { user_id: owner, order: outcome.order, events, duplicate: false };
      }
      throw new AppError("unavailable", "The store is busy; try again");
    });
  }

  async getOrder(userId: string, orderId: string): Promise<Order | null> {
    const rec = await this.#kv.get<OrderRecord>(["order", orderId]);
    return rec.value && rec.value.user_id === userId ? rec.value.order : null;
  }

  async listOrders(
    userId: string,
    options: { status: StatusFilter; limit: number; cursor?: string | null },
  ): Promise<OrderPage> {
    const prefix = ["uo", userId, options.status];
    const selector: Deno.KvListSelector = options.cursor
      ? { prefix, end: [...prefix, decodeCursor(options.cursor)] }
      : { prefix };
    const orders: Order[] = [];
    for await (
      const entry of this.#kv.list<Order>(selector, { reverse: true, limit: options.limit + 1 })
    ) {
      orders.push(entry.value);
    }
    const more = orders.length > options.limit;
    if (more) orders.pop();
    return {
      orders,
      next_cursor: more ? encodeCursor(orders[orders.length - 1].id) : null,
    };
  }

  async orderEvents(userId: string, orderId: string): Promise<OrderEvent[]> {
    const keys: Deno.KvKey[] = [];
    for await (const e of this.#kv.list<string>({ prefix: ["oe", orderId] })) {
      if (e.value !== userId) return [];
      keys.push(["ev", userId, e.key[2] as number]);
    }
    return await this.#getEvents(keys);
  }

  async workingOrders(limit: number): Promise<Array<{ user_id: string; order: Order }>> {
    const out: OrderRecord[] = [];
    for await (const e of this.#kv.list<string>({ prefix: ["working"] }, { limit })) {
      const rec = await this.#kv.get<OrderRecord>(["order", e.key[1] as string]);
      if (rec.value && !isFinal(rec.value.order.status)) out.push(rec.value);
    }
    return out;
  }

  async orderOwner(orderId: string): Promise<string | null> {
    return (await this.#kv.get<OrderRecord>(["order", orderId])).value?.user_id ?? null;
  }

  // --- the event log ----------------------------------------------------------------------------

  async eventsSince(userId: string, afterSeq: number, limit: number): Promise<OrderEvent[]> {
    const out: OrderEvent[] = [];
    const iter = this.#kv.list<OrderEvent>(
      { prefix: ["ev", userId], start: ["ev", userId, afterSeq + 1] },
      { limit, batchSize: Math.min(limit, 500) },
    );
    for await (const e of iter) out.push(e.value);
    return out;
  }

  async eventsSinceMany(
    positions: ReadonlyArray<{ user_id: string; after_seq: number }>,
    limitPerUser: number,
  ): Promise<UserEvent[]> {
    const out: UserEvent[] = [];
    for (const p of positions) {
      for (const event of await this.eventsSince(p.user_id, p.after_seq, limitPerUser)) {
        out.push({ user_id: p.user_id, event });
      }
    }
    return out;
  }

  async currentSeq(userId: string): Promise<number> {
    return (await this.#kv.get<number>(["seq", userId])).value ?? 0;
  }

  async oldestSeq(userId: string): Promise<number | null> {
    for await (const e of this.#kv.list({ prefix: ["ev", userId] }, { limit: 1 })) {
      return e.key[2] as number;
    }
    return null;
  }

  async pruneEvents(before: Date): Promise<number> {
    const cutoff = before.toISOString();
    let pruned = 0;
    let op = this.#kv.atomic();
    let pending = 0;
    for await (const e of this.#kv.list<OrderEvent>({ prefix: ["ev"] })) {
      const [, userId, seq] = e.key as [string, string, number];
      if (e.value.at >= cutoff) continue;
      // Never a user's latest event: currentSeq and resume keep working from it.
      if (seq >= await this.currentSeq(userId)) continue;
      op.delete(e.key).delete(["oe", e.value.order.id, seq]);
      pruned++;
      if (++pending >= 400) {
        await op.commit();
        op = this.#kv.atomic();
        pending = 0;
      }
    }
    if (pending > 0) await op.commit();
    return pruned;
  }

  // --- sessions ---------------------------------------------------------------------------------

  async createSession(
    session: Omit<Session, "revoked_at" | "last_seen_at">,
    tokenHash: string,
  ): Promise<Session> {
    const full: Session = { ...session, last_seen_at: session.created_at, revoked_at: null };
    const res = await this.#kv.atomic()
      .check({ key: ["session", session.id], versionstamp: null })
      .check({ key: ["token", tokenHash], versionstamp: null })
      .set(["session", session.id], full)
      .set(["token", tokenHash], session.id)
      .set(["us", session.user_id, session.id], true)
      .commit();
    if (!res.ok) throw new AppError("conflict", "That session already exists");
    return full;
  }

  async sessionByTokenHash(tokenHash: string): Promise<Session | null> {
    const id = (await this.#kv.get<string>(["token", tokenHash])).value;
    return id ? await this.getSession(id) : null;
  }

  async getSession(sessionId: string): Promise<Session | null> {
    return (await this.#kv.get<Session>(["session", sessionId])).value;
  }

  async ensureSession(session: Omit<Session, "revoked_at" | "last_seen_at">): Promise<Session> {
    const existing = await this.getSession(session.id);
    if (existing) return existing;
    const full: Session = { ...session, last_seen_at: session.created_at, revoked_at: null };
    await this.#kv.atomic()
      .check({ key: ["session", session.id], versionstamp: null })
      .set(["session", session.id], full)
      .set(["us", session.user_id, session.id], true)
      .commit();
    return (await this.getSession(session.id)) ?? full;
  }

  async touchSession(sessionId: string, now: Date): Promise<void> {
    const entry = await this.#kv.get<Session>(["session", sessionId]);
    if (!entry.value || entry.value.revoked_at) return;
    // A lost race only loses a last-seen time; no retry needed.
    await this.#kv.atomic().check(entry)
      .set(["session", sessionId], { ...entry.value, last_seen_at: now.toISOString() })
      .commit();
  }

  async listSessions(userId: string): Promise<Session[]> {
    const ids: string[] = [];
    for await (const e of this.#kv.list({ prefix: ["us", userId] })) ids.push(e.key[2] as string);
    const sessions: Session[] = [];
    for (const id of ids) {
      const s = await this.getSession(id);
      if (s && !s.revoked_at) sessions.push(s);
    }
    return sessions.sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  async revokeSession(userId: string | null, sessionId: string, now: Date): Promise<boolean> {
    const entry = await this.#kv.get<Session>(["session", sessionId]);
    const s = entry.value;
    if (!s || s.revoked_at || (userId !== null && s.user_id !== userId)) return false;
    const op = this.#kv.atomic().check(entry)
      .set(["session", sessionId], { ...s, revoked_at: now.toISOString() })
      .delete(["us", s.user_id, sessionId]);
    for (const sub of await this.listPushSubscriptions(s.user_id)) {
      if (sub.session_id === sessionId) {
        op.delete(["push", sub.endpoint]).delete(["up", s.user_id, sub.endpoint]);
      }
    }
    if (!(await op.commit()).ok) return await this.revokeSession(userId, sessionId, now);
    this.#changes.revoked(sessionId, s.user_id);
    return true;
  }

  // --- push subscriptions -----------------------------------------------------------------------

  async addPushSubscription(sub: PushSubscriptionRecord): Promise<void> {
    const prev = (await this.#kv.get<PushSubscriptionRecord>(["push", sub.endpoint])).value;
    const op = this.#kv.atomic();
    if (prev && prev.user_id !== sub.user_id) op.delete(["up", prev.user_id, sub.endpoint]);
    await op.set(["push", sub.endpoint], sub).set(["up", sub.user_id, sub.endpoint], true)
      .commit();
  }

  async removePushSubscription(userId: string, endpoint: string): Promise<boolean> {
    const prev = (await this.#kv.get<PushSubscriptionRecord>(["push", endpoint])).value;
    if (!prev || prev.user_id !== userId) return false;
    await this.#kv.atomic().delete(["push", endpoint]).delete(["up", userId, endpoint]).commit();
    return true;
  }

  async removePushSubscriptionByEndpoint(endpoint: string): Promise<void> {
    const prev = (await this.#kv.get<PushSubscriptionRecord>(["push", endpoint])).value;
    if (!prev) return;
    await this.#kv.atomic().delete(["push", endpoint]).delete(["up", prev.user_id, endpoint])
      .commit();
  }

  async listPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    // Asked on every fill: batched reads (getMany takes up to 10 keys), not two per subscription.
    const endpoints: string[] = [];
    for await (const e of this.#kv.list({ prefix: ["up", userId] })) {
      endpoints.push(e.key[2] as string);
    }
    const out: PushSubscriptionRecord[] = [];
    for (let i = 0; i < endpoints.length; i += 10) {
      const subs = (await this.#kv.getMany<PushSubscriptionRecord[]>(
        endpoints.slice(i, i + 10).map((e) => ["push", e]),
      )).flatMap((g) => g.value ? [g.value] : []);
      const sessions = await this.#kv.getMany<Session[]>(
        subs.map((s) => ["session", s.session_id]),
      );
      // One that raced its device's sign-out (added just after the revoke removed the device's
      // subscriptions) is never used: a signed-out device gets no alerts.
      out.push(...subs.filter((_, j) => !sessions[j].value?.revoked_at));
    }
    return out;
  }

  async claimAlert(userId: string, seq: number, now: Date): Promise<boolean> {
    // Expires with the events it is about (KV forgets it by itself).
    const key = ["alert", userId, seq];
    const res = await this.#kv.atomic().check({ key, versionstamp: null })
      .set(key, now.toISOString(), { expireIn: 7 * 24 * 3600_000 }).commit();
    return res.ok;
  }

  // --- settings ---------------------------------------------------------------------------------

  async getSetting(key: string): Promise<string | null> {
    return (await this.#kv.get<string>(["setting", key])).value;
  }

  async setSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.#kv.atomic().check({ key: ["setting", key], versionstamp: null })
      .set(["setting", key], value).commit();
    return (await this.getSetting(key))!;
  }

  async ping(): Promise<boolean> {
    try {
      await this.#kv.get(["setting", "ping"]);
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    this.#kv.close();
    return Promise.resolve();
  }

  // --- internals --------------------------------------------------------------------------------

  /** A user's request on their own order (cancel, replace): one atomic step like a report. */
  #userAction(
    userId: string,
    orderId: string,
    decide: (order: Order) => lifecycle.Outcome,
    now: Date,
  ): Promise<WriteResult> {
    return this.#mutex.run(userId, async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const [orderEntry, seqEntry] = await this.#kv.getMany<[OrderRecord, number]>([
          ["order", orderId],
          ["seq", userId],
        ]);
        if (!orderEntry.value || orderEntry.value.user_id !== userId) {
          throw orderNotFound(orderId);
        }
        const order = orderEntry.value.order;
        const outcome = acceptedOrThrow(decide(order));
        const steps = outcome.steps;
        if (steps.length === 0) return { user_id: userId, order, events: [] };
        const events = eventsFromSteps(steps, (seqEntry.value ?? 0) + 1, now);
        const op = this.#kv.atomic().check(orderEntry, seqEntry);
        this.#writeOrder(op, userId, outcome.order, order);
        this.#writeEvents(op, userId, events);
        if (!(await op.commit()).ok) continue;
        this.#changes.publish(events.map((event) => ({ user_id: userId, event })));
        return { user_id: userId, order: outcome.order, events };
      }
      throw new AppError("unavailable", "The store is busy; try again");
    });
  }

  /** The first result of an exec_id seen before, or null. */
  async #duplicate(execId: string): Promise<ApplyResult | null> {
    const rec = (await this.#kv.get<ExecRecord>(["exec", execId])).value;
    return rec ? await this.#duplicateOf(rec) : null;
  }

  async #duplicateOf(rec: ExecRecord): Promise<ApplyResult> {
    const events = await this.#getEvents(rec.seqs.map((seq) => ["ev", rec.user_id, seq]));
    // The first result's snapshot; if its events were pruned, the order as it is now.
    const order = events[0]?.order ??
      (await this.#kv.get<OrderRecord>(["order", rec.order_id])).value!.order;
    return { user_id: rec.user_id, order, events, duplicate: true };
  }

  async #getEvents(keys: Deno.KvKey[]): Promise<OrderEvent[]> {
    const out: OrderEvent[] = [];
    for (let i = 0; i < keys.length; i += 10) {
      const entries = await this.#kv.getMany<OrderEvent[]>(keys.slice(i, i + 10));
      for (const e of entries) if (e.value) out.push(e.value);
    }
    return out;
  }

  #writeOrder(op: Deno.AtomicOperation, userId: string, order: Order, prev: Order | null): void {
    op.set(["order", order.id], { user_id: userId, order } satisfies OrderRecord);
    op.set(["uo", userId, "all", order.id], order);
    const final = isFinal(order.status);
    op.set(["uo", userId, final ? "closed" : "open", order.id], order);
    if (prev && isFinal(prev.status) !== final) {
      op.delete(["uo", userId, final ? "open" : "closed", order.id]);
    }
    if (final) op.delete(["working", order.id]);
    else op.set(["working", order.id], userId);
  }

  #writeEvents(op: Deno.AtomicOperation, userId: string, events: OrderEvent[]): void {
    for (const e of events) {
      op.set(["ev", userId, e.seq], e);
      op.set(["oe", e.order.id, e.seq], userId);
    }
    op.set(["seq", userId], events[events.length - 1].seq);
  }
}
