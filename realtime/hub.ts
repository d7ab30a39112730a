/**
 * Per-user channels in memory. A subscriber is one open stream of one device; the hub only knows
 * who listens to which user, fans events out without awaiting anyone, and ends streams (logout,
 * shutdown, per-user cap). Each subscriber owns its bounded queue (realtime/sse.ts): a stalled
 * one closes itself and resumes with Last-Event-ID, so a slow client never holds memory here.
 */
import { Episode, type Logger, silentLogger } from "../log.ts";
import { AppError } from "../orders/errors.ts";
import type { OrderEvent } from "../orders/model.ts";
import type { Metrics } from "./metrics.ts";
import type { ChangeSource } from "../store/store.ts";
import { Heartbeat, type Ticker } from "./heartbeat.ts";
import { SharedFrames } from "./sse_frame.ts";

export type { Ticker } from "./heartbeat.ts";

/** Whether events are arriving live, as `status` events tell clients. */
export interface RealtimeStatus {
  realtime: "ok" | "degraded";
  reason?: string;
}

/**
 * Why a stream ended: the one vocabulary for `Subscriber.close`, the stream's `onClose` and the
 * `blotter_streams_closed_total{reason}` label (so a dashboard's label is exactly what the code
 * said, never a string cut from a message). The values are the labels operators already chart
 * (docs/operations.md), hence words, not identifiers.
 */
export type CloseReason =
  /** The client closed the connection (or it dropped). */
  | "client went away"
  /** Too far behind; it resumes with Last-Event-ID. */
  | "slow consumer"
  /** Its device session was revoked (here, or on another instance via the change feed). */
  | "session revoked"
  /** Its device signed out. */
  | "logged out"
  /** The server is stopping; clients reconnect elsewhere or after the restart. */
  | "server shutting down"
  /** The replay from the store failed when the stream opened. */
  | "replay failed"
  /** Its credentials expired (a JWT's `exp`) and were not refreshed; it reconnects with new ones. */
  | "credentials expired"
  /** Filling a gap from the store failed after its retries. */
  | "catch-up failed";

/** One open stream, as the hub sees it. */
export interface Subscriber {
  readonly userId: string;
  readonly sessionId: string;
  /** The last seq this stream has sent (or will send, once its replay is done). */
  readonly lastSeq: number;
  /** Whether it is live (not opening, replaying or filling a gap from the store). */
  readonly live?: boolean;
  /**
   * New events for this user, in seq order. Must not block; may arrive twice or with gaps.
   * `shared` (when the user has several streams) holds frames another stream already built.
   */
  deliver(events: OrderEvent[], shared?: SharedFrames): void;
  /**
   * The feed's catch-up after it reconnected: the store's events of this user from at most this
   * stream's position on (from `lastSeq` itself, so the stream can tell whether the store still
   * has what it sent).
   */
  caughtUp(events: OrderEvent[]): void;
  /** The change feed was lost or is back. */
  status(status: RealtimeStatus): void;
  /** A heartbeat tick: write a comment so proxies and clients know the stream is alive. */
  heartbeat(): void;
  /** Ends the stream (the client reconnects, unless its session is gone). */
  close(reason: CloseReason): void;
  /** Settles once really closed, where closing is a handshake (the app socket's close frame). */
  readonly whenClosed?: Promise<void>;
}

/** Limits and instruments for the hub. */
export interface HubOptions {
  /** Concurrent streams one user may hold; the next is refused with 429. */
  maxStreamsPerUser: number;
  /**
   * Concurrent streams on this instance (MAX_STREAMS; default: no cap); the next is refused with
   * 503. Each is a socket, so this keeps the process below its open-file limit (server/descriptors.ts).
   */
  maxStreams?: number;
  /** Heartbeat interval; one timer for all streams, not one per stream. */
  heartbeatMs?: number;
  /** What drives the heartbeat (tests drive it by hand); an unref'd interval by default. */
  ticker?: Ticker;
  metrics?: Metrics;
  /** Whom to tell that this instance serves a user, or no longer does (the store's changes). */
  interest?: Pick<ChangeSource, "watch" | "unwatch">;
  /** Where refusals at `maxStreams` are told, once per burst. */
  log?: Logger;
  /** Whether the process has descriptors for one more (the server's `roomForMore`); else 503. */
  roomLeft?: () => boolean;
}

/** How long shutdown waits for app sockets' close handshakes before it stops serving anyway. */
const CLOSE_WAIT_MS = 1_000;

/** How long a stream refused at the instance's cap is asked to wait before it tries again. */
export const STREAMS_FULL_RETRY_S = 5;

/** What a stream arriving while the server shuts down is answered: 503, come back in a second. */
export function restarting(): AppError {
  return new AppError("unavailable", "The server is restarting; retry shortly", {
    retry_after_s: 1,
  });
}

/** What a stream past the instance's cap is answered: 503, come back in a few seconds. */
export function streamsFull(): AppError {
  return new AppError(
    "unavailable",
    "This server holds as many open streams as it can; retry shortly",
    { retry_after_s: STREAMS_FULL_RETRY_S },
  );
}

/** The in-memory fan-out from the change feed to open streams. */
export class Hub {
  readonly #users = new Map<string, Set<Subscriber>>();
  readonly #sessions = new Map<string, Set<Subscriber>>();
  readonly #max: number;
  /** The instance's cap (MAX_STREAMS). */
  readonly maxStreams: number;
  /** Refusals at `maxStreams`: logged once per burst, ended by quiet or by `closeAll`. */
  readonly #full: Episode;
  readonly #metrics: Metrics | undefined;
  #count = 0;
  /** Set by closeAll at shutdown: `add` refuses from then on. */
  closing = false;
  #status: RealtimeStatus = { realtime: "ok" };
  readonly #heartbeat: Heartbeat<Subscriber> | null;
  readonly #interest: HubOptions["interest"];
  readonly #roomLeft: HubOptions["roomLeft"];
  /** Per user with a stream here: when their changes from other instances flow (`watching`). */
  readonly #watching = new Map<string, Promise<void>>();

  constructor(options: HubOptions) {
    this.#max = options.maxStreamsPerUser;
    this.maxStreams = options.maxStreams ?? Infinity;
    this.#metrics = options.metrics;
    this.#full = new Episode(options.log ?? silentLogger, {
      began: "refusing new streams: MAX_STREAMS or the open-file limit reached (503 + Retry-After)",
      ended: "taking new streams again",
      quietMs: 10_000,
    });
    this.#heartbeat = options.heartbeatMs
      ? new Heartbeat(options.heartbeatMs, options.ticker)
      : null;
    this.#interest = options.interest;
    this.#roomLeft = options.roomLeft;
    options.metrics?.gauge("blotter_open_streams", "Open streams and sockets", () => this.#count);
  }

  /**
   * Adds a stream; throws `streamsFull()` (503) past the instance's cap and too_many_streams (429)
   * past the user's. Returns its removal.
   */
  add(sub: Subscriber): () => void {
    // After closeAll (shutdown) nothing new is taken: a stream or socket arriving while the
    // server finishes would hold its shutdown open, and be cut without a word.
    if (this.closing) throw restarting();
    if (this.#count >= this.maxStreams || this.#roomLeft?.() === false) {
      this.#metrics?.streamsRefused.inc();
      this.#full.occurred({ max_streams: this.maxStreams, open_streams: this.#count });
      throw streamsFull();
    }
    let subs = this.#users.get(sub.userId);
    if (subs && subs.size >= this.#max) {
      throw new AppError(
        "too_many_streams",
        `At most ${this.#max} open streams per user; close one and try again`,
      );
    }
    if (!subs) {
      this.#users.set(sub.userId, subs = new Set());
      this.#watching.set(sub.userId, this.#interest?.watch?.(sub.userId) ?? Promise.resolve());
    }
    subs.add(sub);
    let bySession = this.#sessions.get(sub.sessionId);
    if (!bySession) this.#sessions.set(sub.sessionId, bySession = new Set());
    bySession.add(sub);
    const unbeat = this.#heartbeat?.add(sub);
    this.#count++;
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      this.#count--;
      unbeat?.();
      subs.delete(sub);
      if (subs.size === 0 && this.#users.get(sub.userId) === subs) {
        this.#users.delete(sub.userId);
        this.#watching.delete(sub.userId);
        this.#interest?.unwatch?.(sub.userId);
      }
      bySession.delete(sub);
      if (bySession.size === 0 && this.#sessions.get(sub.sessionId) === bySession) {
        this.#sessions.delete(sub.sessionId);
      }
    };
  }

  /**
   * Delivers one user's new events to each of their streams (none awaited). Each event is framed
   * once for all of them: the streams share one `SharedFrames` for this publish.
   */
  publish(userId: string, events: OrderEvent[]): void {
    const subs = this.#users.get(userId);
    if (!subs) return;
    const shared = subs.size > 1 ? new SharedFrames() : undefined;
    for (const s of subs) s.deliver(events, shared);
  }

  /**
   * Resolves once this user's changes from other instances flow here (the event bus has their
   * subscription): a stream reads the log only then, so nothing committed after that is missed.
   */
  watching(userId: string): Promise<void> {
    return this.#watching.get(userId) ?? Promise.resolve();
  }

  /** Hands the feed's catch-up of one user to each of their streams (see `Subscriber.caughtUp`). */
  catchUp(userId: string, events: OrderEvent[]): void {
    for (const s of this.#users.get(userId) ?? []) s.caughtUp(events);
  }

  /** Ends every stream of a device session (logout, revoke). */
  endSession(sessionId: string, reason: "session revoked" | "logged out"): void {
    const subs = this.#sessions.get(sessionId);
    if (!subs) return;
    for (const s of [...subs]) s.close(reason);
  }

  /** Tells every stream whether events are arriving live. */
  setRealtimeStatus(status: RealtimeStatus): void {
    if (status.realtime === this.#status.realtime && status.reason === this.#status.reason) return;
    this.#status = status;
    for (const subs of this.#users.values()) for (const s of subs) s.status(status);
  }

  /** The current realtime status (a new stream sends it when degraded). */
  get realtimeStatus(): RealtimeStatus {
    return this.#status;
  }

  /**
   * Each user with an open stream and the oldest position among their streams (catch-up);
   * `liveOnly`: among live streams only (one that replays or fills reads the store itself).
   */
  positions(liveOnly = false): Array<{ user_id: string; after_seq: number }> {
    const out: Array<{ user_id: string; after_seq: number }> = [];
    for (const [userId, subs] of this.#users) {
      let min = Infinity;
      for (const s of subs) if (!liveOnly || s.live !== false) min = Math.min(min, s.lastSeq);
      if (min !== Infinity) out.push({ user_id: userId, after_seq: min });
    }
    return out;
  }

  /** The device sessions with an open stream here. */
  sessionIds(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Whether a device session has an open stream (a visible page); if not, it gets Web Push. */
  hasSessionStream(sessionId: string): boolean {
    return (this.#sessions.get(sessionId)?.size ?? 0) > 0;
  }

  /** Open streams in this process. */
  get streamCount(): number {
    return this.#count;
  }

  /**
   * Ends every stream (shutdown: clients reconnect elsewhere or after the restart). Settles once
   * the connections whose close is a handshake have closed, or after CLOSE_WAIT_MS.
   */
  closeAll(reason: CloseReason): Promise<void> {
    this.closing = reason === "server shutting down";
    this.#heartbeat?.stop();
    this.#full.resolved();
    const closing: Promise<void>[] = [];
    for (const subs of [...this.#users.values()]) {
      for (const s of [...subs]) {
        s.close(reason);
        if (s.whenClosed) closing.push(s.whenClosed);
      }
    }
    if (closing.length === 0) return Promise.resolve();
    let bound: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      Promise.all(closing).then(() => {}),
      new Promise<void>((r) => (bound = setTimeout(r, CLOSE_WAIT_MS))),
    ]).finally(() => clearTimeout(bound));
  }
}
