/**
 * The change feed: one dedicated LISTEN connection per process (not postgres.js's `listen()`,
 * whose re-listen after a failed reconnect gives up silently). When it drops, listeners are told
 * `disconnected` and it retries with backoff; once listening again they are told `connected` and
 * catch up from the log (the catch-up hook: notifications sent meanwhile are gone). It parses
 * each NOTIFY and delivers it to the listeners in arrival order.
 */
import postgres from "postgres";
import type { OrderEvent, UserEvent } from "../../orders/model.ts";
import type { EventLog } from "../store.ts";
import type { Notice } from "./changes.ts";
import { type PgContext, serverChoice, type Sql } from "./connect.ts";

/** Listener reconnect backoff, doubling from the first to the last. */
const RECONNECT_MS = [100, 250, 500, 1_000, 2_000];

/** The running LISTEN connection. */
export interface PgListener {
  /** Resolves once every notification heard so far was delivered. */
  delivered(): Promise<void>;
  /** Closes the LISTEN connection (set `ctx.closed` first, so it is not reopened). */
  end(): Promise<void>;
}

/**
 * Opens the LISTEN connection; resolves once listening (or throws if the database is away).
 * `onInbox` is called when the inbox channel wakes and on every (re)connect.
 */
export async function startListening(
  ctx: PgContext,
  log: Pick<EventLog, "eventsSince">,
  onInbox: () => void,
): Promise<PgListener> {
  let reconnecting = false;
  /** Notifications are delivered in arrival order, even when one must first fetch its events. */
  let delivery: Promise<void> = Promise.resolve();

  async function listen(l: Sql): Promise<void> {
    await l.unsafe(`listen "${ctx.channel.replaceAll('"', '""')}"`);
    await l.unsafe(`listen "${ctx.inboxChannel.replaceAll('"', '""')}"`);
    ctx.subs.clear(); // whatever changed while not listening was not heard
    ctx.cache.clear();
    ctx.changes.connected = true;
    ctx.log.info("listening for order events", { channel: ctx.channel });
    for (const listener of ctx.changes.listeners) listener.connected();
    onInbox();
  }

  function onClosed(): void {
    if (ctx.closed || reconnecting) return;
    reconnecting = true;
    ctx.subs.clear();
    ctx.cache.clear();
    if (ctx.changes.connected) {
      ctx.changes.connected = false;
      ctx.log.warn("lost the database change feed; reconnecting");
      for (const l of ctx.changes.listeners) l.disconnected("the database change feed was lost");
    }
    (async () => {
      for (let attempt = 0; !ctx.closed; attempt++) {
        await new Promise((r) =>
          setTimeout(r, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)])
        );
        if (ctx.closed) return;
        try {
          await listen(listener);
          return;
        } catch (err) {
          ctx.log.debug("change feed reconnect failed", { err: String(err) });
        }
      }
    })().finally(() => {
      reconnecting = false;
    });
  }

  function onNotify(channel: string, payload: string): void {
    if (channel === ctx.inboxChannel) {
      onInbox();
      return;
    }
    if (channel !== ctx.channel) return;
    // This instance's own events reached its listeners at commit (changes.ts `publishOwn`).
    if (payload.startsWith(ctx.instance)) return;
    let notice: Notice;
    try {
      // Events carry their writer's `id|` prefix; revokes and subscription changes are bare.
      notice = JSON.parse(
        payload.charCodeAt(0) === 123 ? payload : payload.slice(payload.indexOf("|") + 1),
      );
    } catch (err) {
      // Only a writer of another release (or a hand-sent NOTIFY) can send this; the events it
      // may have carried are in the log and reach streams on their next catch-up. The payload
      // itself is not logged: it holds users' orders.
      ctx.log.warn("ignored a change notification that is not JSON", {
        err: String(err),
        bytes: payload.length,
      });
      return;
    }
    // A revoked session's subscriptions are deleted with it; either way this user's alert targets
    // changed, on some instance.
    if (notice.k === "subs" || notice.k === "revoke") ctx.subs.forget(notice.u);
    if (notice.k === "subs") return;
    // Another instance wrote for these users: what this one cached of them may be stale.
    if (notice.k === "evs") { for (const { u } of notice.g) ctx.cache.forget(u); }
    else if (notice.k === "ev" || notice.k === "ids") ctx.cache.forget(notice.u);
    delivery = delivery.then(async () => {
      const listeners = [...ctx.changes.listeners];
      if (notice.k === "revoke") {
        for (const l of listeners) l.sessionRevoked(notice.s, notice.u);
        return;
      }
      if (notice.k === "evs") {
        const batch = notice.g.flatMap(({ u, e }) => e.map((event) => ({ user_id: u, event })));
        for (const l of listeners) l.events(batch);
        return;
      }
      let events: OrderEvent[];
      if (notice.k === "ev") events = notice.e;
      else if (notice.k !== "ids") return; // a kind from a newer release: not ours to act on
      else {
        // Too big for NOTIFY: fetch exactly the seqs it names.
        const from = Math.min(...notice.s);
        events = (await log.eventsSince(notice.u, from - 1, notice.s.length))
          .filter((e) => notice.s.includes(e.seq));
      }
      const batch: UserEvent[] = events.map((event) => ({ user_id: notice.u, event }));
      for (const l of listeners) l.events(batch);
    }).catch((err) => ctx.log.error("delivering a notification failed", { err: String(err) }));
  }

  // `onnotify` is a documented connection option that postgres.js's types leave out.
  const options = {
    ...serverChoice(ctx.url),
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 5,
    connection: ctx.connection,
    onnotice: () => {},
    onnotify: onNotify,
    onclose: onClosed,
  };
  const listener: Sql = postgres(ctx.url, options as postgres.Options<Record<string, never>>);
  await listen(listener);
  return {
    delivered: () => delivery,
    end: () => listener.end({ timeout: 1 }),
  };
}
