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
import type { Changes, EventLog, SessionStore } from "../store/store.ts";
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

/** While the feed is down, how often open streams' sessions are checked for a revoke. */
const REVOKE_POLL_MS = 2_000;
/** After the feed returns, a failed catch-up is tried again after this long, doubled up to the max. */
const OK_RETRY_FIRST_MS = 500;
const OK_RETRY_MAX_MS = 10_000;

/** Events told again (not first heard) are alerted only if this recent (by their time). */
const RECENT_MS = 60_000;

/** The events of a batch recent enough to alert: a replay hours later alerts nobody. */
function recent(batch: UserEvent[]): UserEvent[] {
  const since = Date.now() - RECENT_MS;
  return batch.filter((e) => Date.parse(e.event.at) >= since);
}

/** Whom a catch-up round reads for: every user with a stream here, or only these. */
type Whom = "all" | Set<string>;

/** What the feed asks of the store: its changes, the log to catch up from, revoked sessions. */
type FeedStore = Changes & Pick<EventLog, "eventsSinceMany"> & Pick<SessionStore, "revokedAmong">;

/** Starts delivering the store's changes to the hub (and the push dispatcher). */
export function startFeed(
  deps: { store: FeedStore; hub: Hub; push?: EventSink; log: Logger; sweepMs?: number },
): Feed {
  const { store, hub, push, log } = deps;
  let state: { ok: boolean; reason?: string } = { ok: store.changes.connected };
  let catchingUp: Promise<boolean> | null = null;
  /** Resyncs asked while one ran: one more round once it ends, for all of them (at most one). */
  let again: Whom | null = null;
  /** Settles when that one more round has run, with whether it read the log. */
  let againDone: PromiseWithResolvers<boolean> | null = null;
  /** Counts the feed's returns: "ok" is told for the latest only. */
  let returns = 0;
  let retryOk: ReturnType<typeof setTimeout> | undefined;

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
    // A round for a few users (a subscription settling) leaves out streams that replay or fill:
    // they read the store themselves, and one still opening would read its whole history here.
    const positions = hub.positions(whom !== "all")
      .filter(({ user_id }) => whom === "all" || whom.has(user_id))
      .map(({ user_id, after_seq }) => ({ user_id, after_seq: Math.max(after_seq - 1, 0) }));
    if (positions.length === 0) return;
    const events = await store.eventsSinceMany(positions, CATCH_UP_LIMIT);
    // A whole round follows a reconnect (worth a line); one for a few users is routine.
    if (events.length > 0 && whom === "all") {
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
   * would leave that for the user's next event. Asks during a round coalesce into one. Settles
   * once a round that covers this ask has run: true if it read the log, false if that failed.
   */
  const resync = (whom: Whom = "all"): Promise<boolean> => {
    if (catchingUp) {
      again = again === "all" || whom === "all" ? "all" : new Set([...again ?? [], ...whom]);
      return (againDone ??= Promise.withResolvers()).promise;
    }
    catchingUp = catchUp(whom)
      .then(() => true, (err) => {
        log.error("catch-up after reconnect failed", { err: String(err) });
        return false;
      })
      .finally(() => {
        catchingUp = null;
        const [next, done] = [again, againDone];
        [again, againDone] = [null, null];
        if (next) resync(next).then(done?.resolve);
      });
    return catchingUp;
  };

  /**
   * The events in the log newer than the streams of the users served here, delivered (and offered
   * to the push dispatcher) as if heard: an instance that died between commit and publish never
   * told anyone, nor sent their alerts. Most found are on their way this very moment; streams
   * take each event once, and an alert is claimed once.
   */
  const sweep = async () => {
    if (!store.changes.connected) return; // the bus's return catches everyone up anyway
    // Streams still opening (at 0) read the log themselves.
    const positions = hub.positions(true).filter((p) => p.after_seq > 0);
    if (positions.length === 0) return;
    const newer = new Set((await store.eventsSinceMany(positions, 1)).map((e) => e.user_id));
    if (newer.size === 0) return;
    const found = positions.filter((p) => newer.has(p.user_id));
    const events = await store.eventsSinceMany(found, CATCH_UP_LIMIT);
    log.debug("the sweep found events not yet heard", { users: found.length });
    publish(events);
    push?.onEvents(recent(events));
  };

  /**
   * Ends the streams of sessions revoked while the feed could not say so (a lost notice): after
   * every reconnect, and every REVOKE_POLL_MS while the feed is down. One query at a time, and
   * asks meanwhile make one more.
   */
  let rechecking: Promise<void> | null = null;
  let recheckAgain = false;
  const recheckSessions = () => {
    if (rechecking) return void (recheckAgain = true);
    rechecking = (async () => {
      const ids = hub.sessionIds();
      if (ids.length === 0) return;
      for (const id of await store.revokedAmong(ids)) hub.endSession(id, "session revoked");
    })()
      .catch((err) => log.debug("re-checking sessions failed", { err: String(err) }))
      .finally(() => {
        rechecking = null;
        if (recheckAgain) {
          recheckAgain = false;
          recheckSessions();
        }
      });
  };
  let polling: ReturnType<typeof setInterval> | undefined;
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
    events(batch, replayed) {
      publish(batch);
      push?.onEvents(replayed ? recent(batch) : batch);
    },
    sessionRevoked(sessionId) {
      hub.endSession(sessionId, "session revoked");
    },
    connected() {
      state = { ok: true };
      clearInterval(polling);
      polling = undefined;
      // Degraded until caught up (CONTRACT): a client that stops polling at "ok" has by then
      // been sent what was committed while the feed was away. A round that failed is tried
      // again, with backoff, until one reads the log or the feed goes away (again).
      const back = ++returns;
      const tellOk = (wait: number) =>
        resync().then((caughtUp) => {
          if (back !== returns || !state.ok) return;
          if (caughtUp) return hub.setRealtimeStatus({ realtime: "ok" });
          retryOk = setTimeout(() => tellOk(Math.min(wait * 2, OK_RETRY_MAX_MS)), wait);
        }).catch((err) => log.error("telling streams the feed is back failed", { err }));
      clearTimeout(retryOk);
      tellOk(OK_RETRY_FIRST_MS);
      recheckSessions();
    },
    behind(userIds) {
      resync(new Set(userIds));
    },
    disconnected(reason) {
      state = { ok: false, reason };
      hub.setRealtimeStatus({ realtime: "degraded", reason });
      // A revoke told meanwhile is not heard: look for one in the store until the feed is back.
      if (polling === undefined) {
        polling = setInterval(recheckSessions, REVOKE_POLL_MS);
        Deno.unrefTimer(polling as unknown as number);
      }
    },
  });

  return {
    status: () => state,
    stop() {
      clearInterval(sweeper);
      clearInterval(polling);
      clearTimeout(retryOk);
      returns++; // a round still running tells nothing
      unsubscribe();
    },
  };
}
