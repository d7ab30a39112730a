/**
 * The Postgres listener: one dedicated LISTEN connection per process (not postgres.js's `listen()`,
 * whose re-listen after a failed reconnect gives up silently). When it drops it retries with
 * backoff, and the inbox drain is woken once it listens again.
 *
 * Without the bus it is the change feed: it hears every instance's events, revokes and alert-target
 * changes, in commit order; when it drops, listeners are told `disconnected`, and once listening
 * again `connected`, so they catch up from the log (notifications sent meanwhile are gone). With
 * the bus (bus.ts) it listens for the inbox alone, and the bus is the change feed.
 */
import postgres from "postgres";
import type { EventLog } from "../store.ts";
import { type PgContext, serverChoice, type Sql } from "./connect.ts";
import { NoticeQueue, parseNotice } from "./notices.ts";

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
  const notices = new NoticeQueue(ctx, log);
  /** Whether this connection is the change feed (no bus). */
  const isFeed = !ctx.bus;
  let reconnecting = false;

  const onNotify = (channel: string, payload: string): void => {
    if (channel === ctx.inboxChannel) return onInbox();
    if (channel !== ctx.channel || !isFeed) return;
    // This instance's own events reached its listeners at commit (write_set.ts `publishOwn`).
    if (payload.startsWith(ctx.instance)) return;
    // Events carry their writer's `id|` prefix; revokes and alert-target changes are bare.
    const notice = parseNotice(
      ctx,
      payload.charCodeAt(0) === 123 ? payload : payload.slice(payload.indexOf("|") + 1),
    );
    if (notice) notices.hear(notice);
  };

  const onClosed = (): void => {
    if (ctx.closed || reconnecting) return;
    reconnecting = true;
    if (isFeed) {
      // Whatever changes while not listening is not heard: nothing cached can be trusted.
      ctx.subs.clear();
      ctx.cache.clear();
      if (ctx.changes.down("the database change feed was lost")) {
        ctx.log.warn("lost the database change feed; reconnecting");
      }
    }
    relisten(ctx, () => listen(ctx, connection, onInbox, isFeed))
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
  await listen(ctx, connection, onInbox, isFeed);
  return {
    delivered: () => notices.delivered(),
    end: () => connection.end({ timeout: 1 }),
  };
}

/**
 * LISTENs on the inbox channel, and as the change feed on the events channel too; then every
 * listener catches up (what changed meanwhile was unheard).
 */
async function listen(
  ctx: PgContext,
  connection: Sql,
  onInbox: () => void,
  isFeed: boolean,
): Promise<void> {
  if (isFeed) await connection.unsafe(`listen "${ctx.channel.replaceAll('"', '""')}"`);
  await connection.unsafe(`listen "${ctx.inboxChannel.replaceAll('"', '""')}"`);
  if (isFeed) {
    ctx.subs.clear();
    ctx.cache.clear();
    ctx.log.info("listening for order events", { channel: ctx.channel });
    ctx.changes.up();
  }
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
