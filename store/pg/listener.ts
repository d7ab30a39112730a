/**
 * The Postgres listener: one dedicated LISTEN connection per process (not postgres.js's `listen()`,
 * whose re-listen after a failed reconnect gives up silently). When it drops, listeners are told
 * `disconnected` and it retries with backoff; once listening again they are told `connected` and
 * catch up from the log (the catch-up hook: notifications sent meanwhile are gone). It parses
 * each NOTIFY and delivers it to the listeners in arrival order.
 */
import postgres from "postgres";
import type { OrderEvent } from "../../orders/model.ts";
import type { EventLog } from "../store.ts";
import type { Notice } from "./write_set.ts";
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
  /** Notifications are delivered in arrival order, even when one must first fetch its events. */
  let delivery: Promise<void> = Promise.resolve();
  let reconnecting = false;

  const onNotify = (channel: string, payload: string): void => {
    if (channel === ctx.inboxChannel) return onInbox();
    if (channel !== ctx.channel) return;
    // This instance's own events reached its listeners at commit (write_set.ts `publishOwn`).
    if (payload.startsWith(ctx.instance)) return;
    const notice = parseNotice(ctx, payload);
    if (!notice) return;
    forgetWhatChanged(ctx, notice);
    delivery = delivery.then(() => deliver(ctx, log, notice))
      .catch((err) => ctx.log.error("delivering a notification failed", { err: String(err) }));
  };

  const onClosed = (): void => {
    if (ctx.closed || reconnecting) return;
    reconnecting = true;
    // Whatever changes while not listening is not heard: nothing cached can be trusted.
    ctx.subs.clear();
    ctx.cache.clear();
    if (ctx.changes.down("the database change feed was lost")) {
      ctx.log.warn("lost the database change feed; reconnecting");
    }
    relisten(ctx, () => listen(ctx, connection, onInbox))
      .finally(() => (reconnecting = false));
  };

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
  const connection: Sql = postgres(ctx.url, options as postgres.Options<Record<string, never>>);
  await listen(ctx, connection, onInbox);
  return {
    delivered: () => delivery,
    end: () => connection.end({ timeout: 1 }),
  };
}

/** LISTENs on both channels; then every listener catches up (what changed meanwhile was unheard). */
async function listen(ctx: PgContext, connection: Sql, onInbox: () => void): Promise<void> {
  await connection.unsafe(`listen "${ctx.channel.replaceAll('"', '""')}"`);
  await connection.unsafe(`listen "${ctx.inboxChannel.replaceAll('"', '""')}"`);
  ctx.subs.clear();
  ctx.cache.clear();
  ctx.log.info("listening for order events", { channel: ctx.channel });
  ctx.changes.up();
  onInbox();
}

/** Tries `listen` again with backoff until it succeeds or the store closes. */
async function relisten(ctx: PgContext, listen: () => Promise<void>): Promise<void> {
  for (let attempt = 0; !ctx.closed; attempt++) {
    await new Promise((r) =>
      setTimeout(r, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)])
    );
    if (ctx.closed) return;
    try {
      return await listen();
    } catch (err) {
      ctx.log.debug("change feed reconnect failed", { err: String(err) });
    }
  }
}

/**
 * A NOTIFY's payload as a notice, or null (logged) when it is not JSON. Events carry their
 * writer's `id|` prefix; revokes and subscription changes are bare.
 */
function parseNotice(ctx: PgContext, payload: string): Notice | null {
  try {
    return JSON.parse(
      payload.charCodeAt(0) === 123 ? payload : payload.slice(payload.indexOf("|") + 1),
    );
  } catch (err) {
    // Only a writer of another release (or a hand-sent NOTIFY) can send this; the events it may
    // have carried are in the log and reach streams on their next catch-up. The payload itself
    // is not logged: it holds users' orders.
    ctx.log.warn("ignored a change notification that is not JSON", {
      err: String(err),
      bytes: payload.length,
    });
    return null;
  }
}

/** Forgets what this instance cached of the users another instance just wrote for. */
function forgetWhatChanged(ctx: PgContext, notice: Notice): void {
  // A revoked session's subscriptions are deleted with it; either way this user's alert targets
  // changed, on some instance.
  if (notice.k === "subs" || notice.k === "revoke") ctx.subs.forget(notice.u);
  if (notice.k === "evs") { for (const { u } of notice.g) ctx.cache.forget(u); }
  else if (notice.k === "ev" || notice.k === "ids") ctx.cache.forget(notice.u);
}

/** Hands a notice to the store's change listeners (fetching the events an `ids` notice names). */
async function deliver(
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
      // Too big for NOTIFY: fetch exactly the seqs it names.
      const from = Math.min(...notice.s);
      const events: OrderEvent[] = (await log.eventsSince(notice.u, from - 1, notice.s.length))
        .filter((e) => notice.s.includes(e.seq));
      return ctx.changes.publish(events.map((event) => ({ user_id: notice.u, event })));
    }
      // "subs", or a kind from a newer release: not the listeners' to act on.
  }
}
