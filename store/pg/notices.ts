/**
 * What instances tell each other, whatever carries it (NOTIFY, listener.ts, or the NATS bus,
 * bus.ts): the notice format, the payloads a write's events make, and what an instance does with
 * a notice it hears — forget what it cached of the users it names, then hand it to the store's
 * change listeners, in the order heard.
 */
import type { OrderEvent } from "../../orders/model.ts";
import { jsonList } from "../../orders/json.ts";
import type { EventLog } from "../store.ts";
import type { Broadcast, PgContext } from "./connect.ts";

const encoder = new TextEncoder();

/** A notice between instances. */
export type Notice =
  /** One user's committed events. */
  | { k: "ev"; u: string; e: OrderEvent[] }
  /** Several users' committed events (one NOTIFY for a whole write). */
  | { k: "evs"; g: Array<{ u: string; e: OrderEvent[] }> }
  /** One user's committed events by seq, too big to carry: listeners fetch them. */
  | { k: "ids"; u: string; s: number[] }
  /**
   * To every instance: a device session was revoked (`revoke`: its streams end, its user's alert
   * targets changed); a user's alert targets changed (`subs`); what a write whose outcome was lost
   * may have committed was never told (`resync`, bus only: everyone catches up).
   */
  | Broadcast;

/**
 * One user's events as one payload of at most `max` bytes: the events themselves (`ev`), or only
 * their seqs (`ids`) when they do not fit.
 */
export function eventPayload(user: string, events: OrderEvent[], max: number): string {
  // Written out rather than stringified: each event's text is already made (orders/json.ts). The
  // same text as JSON.stringify of { k, u, e }, which listeners parse.
  const full = `{"k":"ev","u":${JSON.stringify(user)},"e":${jsonList(events)}}`;
  if (fits(full, max)) return full;
  return JSON.stringify({ k: "ids", u: user, s: events.map((e) => e.seq) } satisfies Notice);
}

/**
 * The NOTIFY payloads for a write's events, each prefixed with this instance's id (its own
 * listener skips them unparsed: it already had them, see write_set.ts `publishOwn`): one payload
 * for the whole write when it fits, else one per user (events or seqs).
 */
export function notices(ctx: PgContext, byUser: Map<string, OrderEvent[]>): string[] {
  const max = ctx.maxNotifyBytes;
  if (byUser.size > 1) {
    const g = [...byUser].map(([u, e]) => `{"u":${JSON.stringify(u)},"e":${jsonList(e)}}`);
    const all = `${ctx.instance}{"k":"evs","g":[${g.join(",")}]}`;
    if (fits(all, max)) return [all];
  }
  return [...byUser].map(([u, events]) =>
    ctx.instance + eventPayload(u, events, max - ctx.instance.length)
  );
}

/** Whether a payload is at most `max` bytes of UTF-8 (the length check alone when it is sure). */
function fits(payload: string, max: number): boolean {
  if (payload.length * 3 <= max) return true;
  return payload.length <= max && encoder.encode(payload).length <= max;
}

/** A payload as a notice, or null (logged) when it is not JSON. */
export function parseNotice(ctx: PgContext, payload: string): Notice | null {
  try {
    return JSON.parse(payload);
  } catch (err) {
    // Only an instance of another release (or a hand-sent message) can send this; the events it
    // may have carried are in the log and reach streams on their next catch-up. The payload
    // itself is not logged: it holds users' orders.
    ctx.log.warn("ignored a change notification that is not JSON", {
      err: String(err),
      bytes: payload.length,
    });
    return null;
  }
}

/** Forgets what this instance cached of the users another instance just wrote for. */
export function forgetWhatChanged(ctx: PgContext, notice: Notice): void {
  // A revoked session's subscriptions are deleted with it; either way this user's alert targets
  // changed, on some instance.
  if (notice.k === "subs" || notice.k === "revoke") ctx.subs.forget(notice.u);
  if (notice.k === "evs") { for (const { u } of notice.g) ctx.cache.forget(u); }
  else if (notice.k === "ev" || notice.k === "ids") ctx.cache.forget(notice.u);
  else if (notice.k === "resync") {
    // Another instance's news may have been lost (its alert-target changes among them).
    ctx.subs.clear();
    ctx.cache.clear();
  }
}

/** Hands a notice to the store's change listeners (fetching the events an `ids` notice names). */
export async function deliver(
  ctx: PgContext,
  log: Pick<EventLog, "eventsSince">,
  notice: Notice,
): Promise<void> {
  switch (notice.k) {
    case "revoke":
      return ctx.changes.revoked(notice.s, notice.u);
    case "evs":
      return ctx.changes.publish(
        notice.g.flatMap(({ u, e }) => e.map((event) => ({ user_id: u, event }))),
      );
    case "ev":
      return ctx.changes.publish(notice.e.map((event) => ({ user_id: notice.u, event })));
    case "ids": {
      // Too big to carry: fetch exactly the seqs it names.
      const from = Math.min(...notice.s);
      const events: OrderEvent[] = (await log.eventsSince(notice.u, from - 1, notice.s.length))
        .filter((e) => notice.s.includes(e.seq));
      return ctx.changes.publish(events.map((event) => ({ user_id: notice.u, event })));
    }
    case "resync":
      return ctx.changes.resync();
      // "subs", or a kind from a newer release: not the listeners' to act on.
  }
}

/**
 * Hears notices in order: each is applied to the caches at once and delivered after the ones
 * before it (an `ids` notice first fetches its events). Resolves `delivered` once all heard so
 * far are delivered.
 */
export class NoticeQueue {
  #delivery: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: PgContext,
    private readonly log: Pick<EventLog, "eventsSince">,
  ) {}

  /** Takes one notice heard from another instance. */
  hear(notice: Notice): void {
    forgetWhatChanged(this.ctx, notice);
    this.#delivery = this.#delivery.then(() => deliver(this.ctx, this.log, notice))
      .catch((err) => this.ctx.log.error("delivering a notification failed", { err: String(err) }));
  }

  /** Resolves once every notice heard so far was delivered. */
  delivered(): Promise<void> {
    return this.#delivery;
  }
}
