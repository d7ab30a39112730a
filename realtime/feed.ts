/**
 * The change feed: turns the store's change source into hub deliveries and push alerts. When the
 * source (Postgres LISTEN) reconnects, whatever was committed meanwhile was never heard, so every
 * user with an open stream is caught up from the store's log from their streams' position — read
 * from that position's own event on, so a stream learns whether the store still holds what it sent
 * (a failover to a standby that had not received it) and resets rather than mix two histories.
 * With the event bus it also sweeps: see SWEEP_MS.
 */
import type { Logger } from "../log.ts";
import type { OrderEvent, UserEvent } from "../orders/model.ts";
import type { Changes, EventLog } from "../store/store.ts";
import type { Hub } from "./hub.ts";

/** Where the feed hands events besides the hub (the Web Push dispatcher). */
export interface EventSink {
  onEvents(events: UserEvent[]): void;
}

/** A running feed. */
export interface Feed {
  /** Whether events are arriving live (for /readyz). */
  status(): { ok: boolean; reason?: string };
  stop(): void;
}

/** Events fetched per user per catch-up round. */
const CATCH_UP_LIMIT = 1_000;

/**
 * With the event bus: how often the feed asks the log whether any user it serves has an event it
 * never heard. A commit and its NOTIFY are one; a commit and its publish on the bus are not, so an
 * instance that dies between the two leaves an event unheard until that user's next one.
 */
export const SWEEP_MS = 10_000;

/** Whom a catch-up round reads for: every user with a stream here, or only these. */
type Whom = "all" | Set<string>;

/** What the feed asks of the store: its changes, and the log to catch up from. */
type FeedStore = Changes & Pick<EventLog, "eventsSinceMany">;

/** Starts delivering the store's changes to the hub (and the push dispatcher). */
export function startFeed(
  deps: { store: FeedStore; hub: Hub; push?: EventSink; log: Logger; sweepMs?: number },
): Feed {
  const { store, hub, push, log } = deps;
  let state: { ok: boolean; reason?: string } = { ok: store.changes.connected };
  let catchingUp: Promise<void> | null = null;
  /** Resyncs asked while one ran: one more round once it ends, for all of them (at most one). */
  let again: Whom | null = null;

  const publish = (batch: UserEvent[]) => {
    // Group by user, keeping each user's seq order, then fan out without awaiting anyone.
    const byUser = new Map<string, OrderEvent[]>();
    for (const { user_id, event } of batch) {
      const list = byUser.get(user_id);
      if (list) list.push(event);
      else byUser.set(user_id, [event]);
    }
    for (const [userId, events] of byUser) hub.publish(userId, events);
  };

  const catchUp = async (whom: Whom) => {
    const positions = hub.positions()
      .filter(({ user_id }) => whom === "all" || whom.has(user_id))
      .map(({ user_id, after_seq }) => ({ user_id, after_seq: Math.max(after_seq - 1, 0) }));
    if (positions.length === 0) return;
    const events = await store.eventsSinceMany(positions, CATCH_UP_LIMIT);
    if (events.length > 0) {
      log.info("caught up after the change feed returned", {
        users: positions.length,
        events: events.length,
      });
    }
    const byUser = Map.groupBy(events, (e) => e.user_id);
    // Every user, those with no events too: a store that lost a stream's events answers none.
    // Streams drop what they already sent and fill any remaining gap from the store themselves.
    for (const { user_id } of positions) {
      const theirs = (byUser.get(user_id) ?? []).map((e) => e.event);
      hub.catchUp(user_id, theirs);
    }
  };

  /**
   * Runs a catch-up, then one more if another was asked meanwhile: the running round may have
   * read the log before what was committed while the feed was away (again) — dropping the ask
   * would leave that for the user's next event. Asks during a round coalesce into one.
   */
  const resync = (whom: Whom = "all") => {
    if (catchingUp) {
      again = again === "all" || whom === "all" ? "all" : new Set([...again ?? [], ...whom]);
      return;
    }
    catchingUp = catchUp(whom)
      .catch((err) => log.error("catch-up after reconnect failed", { err: String(err) }))
      .finally(() => {
        catchingUp = null;
        const next = again;
        again = null;
        if (next) resync(next);
      });
  };

  /** The users served here whose log holds an event newer than their streams: caught up. */
  const sweep = async () => {
    if (!store.changes.connected) return; // the bus's return catches everyone up anyway
    const positions = hub.positions();
    if (positions.length === 0) return;
    const newer = await store.eventsSinceMany(positions, 1);
    // Most are events on their way this very moment; the catch-up drops what streams have.
    if (newer.length > 0) resync(new Set(newer.map((e) => e.user_id)));
  };
  let sweeping = false;
  const sweeper = deps.sweepMs
    ? setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      sweep().catch((err) => log.warn("checking for unheard events failed", { err: String(err) }))
        .finally(() => (sweeping = false));
    }, deps.sweepMs)
    : undefined;
  if (sweeper !== undefined) Deno.unrefTimer(sweeper as unknown as number);

  const unsubscribe = store.changes.subscribe({
    events(batch) {
      publish(batch);
      push?.onEvents(batch);
    },
    sessionRevoked(sessionId) {
      hub.endSession(sessionId, "session revoked");
    },
    connected() {
      state = { ok: true };
      hub.setRealtimeStatus({ realtime: "ok" });
      resync();
    },
    disconnected(reason) {
      state = { ok: false, reason };
      hub.setRealtimeStatus({ realtime: "degraded", reason });
    },
  });

  return {
    status: () => state,
    stop() {
      clearInterval(sweeper);
      unsubscribe();
    },
  };
}
