/**
 * What every live connection of a user does, whatever carries it (an SSE stream, the app socket):
 * follow the user's events in seq order — nothing twice, no gap, never another history.
 *
 * A follower registers with the hub BEFORE it replays from the store, holding live events aside,
 * then sends only what is newer than the replay: an event that lands during the replay is neither
 * dropped nor repeated. A gap (seq jumps: the change feed reconnected, another instance wrote) is
 * filled from the store, never skipped. An event of another history (a failover lost the newest
 * events and the store has grown new ones under the same seqs) is never sent on top of the one
 * the follower sent: it resets instead (realtime/resume.ts decides how a connection opens).
 * Subclasses frame and send; this class decides what and when.
 */
import type { ResumePoint } from "../orders/event_id.ts";
import type { OrderEvent } from "../orders/model.ts";
import type { CloseReason, Hub, RealtimeStatus, Subscriber } from "./hub.ts";
import {
  agreesWith,
  newestPosition,
  openingFor,
  type Position,
  RESET_REASONS,
  type ResumeLog,
} from "./resume.ts";
import type { SharedFrames } from "./sse_frame.ts";

/** What a follower needs, whatever its transport. */
export interface FollowerOptions {
  userId: string;
  sessionId: string;
  store: ResumeLog;
  hub: Hub;
  /** Where the client resumes from (null: live from the user's current seq). */
  resumeFrom: ResumePoint | null;
  /** Events a client may fall behind by (queued to it, or held during a replay) before it is closed. */
  queueLimit: number;
  /** When the credentials it was opened with expire (ms since the epoch): it ends then. */
  expiresAt?: number;
}

/** Events fetched per store round trip while replaying. */
export const REPLAY_PAGE = 500;
/** Retries of a gap fill before giving up on the connection (backoff 0.25 s doubling, 4 s max). */
const FILL_RETRIES = 8;

/** One live connection's order keeping; subclasses send what it decides. */
export abstract class Follower implements Subscriber {
  readonly userId: string;
  readonly sessionId: string;
  /** What this connection sent last (or starts after): its seq and that event's full id. */
  protected at: Position = { seq: 0, id: null };
  /**
   * Live events held while the connection replays or fills a gap from the store (null: live,
   * sent as they come). Bounded like a transport's queue: past `queueLimit` the connection ends as
   * a slow consumer and the client resumes from its last id (the store has every event).
   */
  #liveQueue: OrderEvent[] | null = [];
  /**
   * The feed caught up while a replay or fill was running: once it is done, ask the store again
   * whether the event this connection sent last is still there (a failover may have happened).
   */
  #checkDue = false;
  /** Set once the connection has ended: nothing more is sent. */
  protected closed = false;
  #unsubscribe: () => void = () => {};
  #expiry: ReturnType<typeof setTimeout> | undefined;

  constructor(protected readonly options: FollowerOptions) {
    this.userId = options.userId;
    this.sessionId = options.sessionId;
  }

  /** The hub's catch-up position. */
  get lastSeq(): number {
    return this.at.seq;
  }

  /** Whether it sends events as they come (not opening, replaying or filling from the store). */
  get live(): boolean {
    return this.#liveQueue === null && !this.closed;
  }

  /** Sends events in seq order: a replay page (`live` false) or live ones. */
  protected abstract send(events: OrderEvent[], live: boolean, shared?: SharedFrames): void;
  /** Tells the client to reload: live from `at` on. */
  protected abstract sendReset(at: Position, reason: string): void;
  /** Replay pacing: resolves once the client has taken enough of what was sent (or it ended). */
  protected abstract drained(): Promise<void>;
  /** Ends the connection (once), saying why; `detail` for a failure's message. */
  protected abstract end(reason: CloseReason, detail?: string): void;
  abstract status(status: RealtimeStatus): void;
  abstract heartbeat(): void;
  abstract close(reason: CloseReason): void;

  /** Registers with the hub (throws 429 / 503 past the caps); call before `follow`. */
  protected register(): void {
    this.#unsubscribe = this.options.hub.add(this);
    this.expireAt(this.options.expiresAt);
  }

  /** Ends the connection when its credentials expire (again, after a refresh); never if undefined. */
  protected expireAt(expiresAt: number | undefined): void {
    clearTimeout(this.#expiry);
    if (expiresAt === undefined || this.closed) return;
    // setTimeout holds at most ~24.8 days; a later expiry is looked at again then.
    const wait = Math.min(Math.max(expiresAt - Date.now(), 0), 2 ** 31 - 1);
    this.#expiry = setTimeout(() => {
      if (Date.now() >= expiresAt) this.end("credentials expired");
      else this.expireAt(expiresAt);
    }, wait);
  }

  /** Leaves the hub and stops the expiry timer (a subclass calls it as it ends). */
  protected unregister(): void {
    clearTimeout(this.#expiry);
    this.#unsubscribe();
  }

  /** Decides where to start (resume rules), replays, then goes live. Resolves once live. */
  protected follow(): Promise<void> {
    return this.#start().catch((err) => this.end("replay failed", messageOf(err)));
  }

  async #start(): Promise<void> {
    const { store, resumeFrom, hub } = this.options;
    // The user's events from other instances flow here before the log is read (the event bus).
    await hub.watching(this.userId);
    if (this.closed) return;
    const opening = await openingFor(store, this.userId, resumeFrom);
    this.at = opening.at;
    this.opened(opening.at);
    if (opening.kind === "reset") this.#reset(opening.at, opening.reason);
    if (opening.kind === "replay") await this.#fill(false);
    if (hub.realtimeStatus.realtime !== "ok") this.status(hub.realtimeStatus);
    this.#goLive();
  }

  /** Where the connection starts, once decided (the app socket says so in `ready`). */
  protected opened(_at: Position): void {}

  /**
   * Sends everything the store has after this connection's position, page by page, waiting for a
   * slow reader. `check`: first make sure the store's event at the position is still the one sent
   * (a gap fill: the history may have changed since); if not, `reset` to the store's newest.
   */
  async #fill(check: boolean): Promise<void> {
    const { store } = this.options;
    for (let overlap = check && this.at.id !== null ? 1 : 0;; overlap = 0) {
      const page = await store.eventsSince(this.userId, this.at.seq - overlap, REPLAY_PAGE);
      if (this.closed) return;
      if (overlap && (page[0]?.seq !== this.at.seq || page[0].id !== this.at.id)) {
        this.#reset(await newestPosition(store, this.userId), RESET_REASONS.historyChanged);
        return;
      }
      if (page.length > overlap) this.#sendAll(page.slice(overlap), false);
      if (page.length < REPLAY_PAGE) return;
      await this.drained();
    }
  }

  /**
   * A gap fill that outlasts a short database outage (a restart, a failover): retried with backoff
   * for ~20 s while live events wait; past that the connection ends and the client resumes.
   */
  async #fillRetrying(): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#fill(true);
      } catch (err) {
        if (this.closed || attempt >= FILL_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 4_000)));
      }
    }
  }

  #goLive(): void {
    if (this.#checkDue && !this.closed) {
      this.#checkDue = false;
      this.#fillChecked();
      return;
    }
    const held = this.#liveQueue ?? [];
    this.#liveQueue = null;
    if (held.length > 0) this.deliver(held);
  }

  /**
   * Fills from the store after checking it still holds what this connection sent last (resetting
   * if not), holding live events meanwhile; then goes live.
   */
  #fillChecked(): void {
    this.#liveQueue ??= [];
    this.#fillRetrying().then(() => this.#goLive()).catch((err) =>
      this.end("catch-up failed", messageOf(err))
    );
  }

  deliver(events: OrderEvent[], shared?: SharedFrames): void {
    if (this.closed) return;
    if (this.#liveQueue) {
      this.#liveQueue.push(...events);
      if (this.#liveQueue.length > this.options.queueLimit) this.end("slow consumer");
      return;
    }
    if (!agreesWith(this.at, events)) {
      // The store's event at this position is another one: the history this connection sent
      // was lost (a failover) and has grown again. Never send the new one on top of it.
      this.#startOver();
      return;
    }
    const fresh = events.filter((e) => e.seq > this.at.seq);
    if (fresh.length === 0) return;
    if (fresh[0].seq !== this.at.seq + 1) {
      // A gap: something was committed that this process did not hear (yet). Fill it from the
      // store, holding live events meanwhile; the store is the truth.
      this.#liveQueue = [...fresh];
      this.#fillChecked();
      return;
    }
    // Contiguous from here; anything after an internal jump is held back for a fill.
    let n = 1;
    while (n < fresh.length && fresh[n].seq === fresh[n - 1].seq + 1) n++;
    this.#sendAll(fresh.slice(0, n), true, shared);
    if (n < fresh.length) this.deliver(fresh.slice(n), shared);
  }

  /**
   * The feed's catch-up (Subscriber). With the event this connection sent last among them, the
   * events are delivered (which checks its id). Without it, either the store lost it (a
   * failover) or this connection moved on while the list was read: a checked fill asks the store
   * which, and resets only in the first case. While a replay or fill runs (it reads the store
   * itself) the check waits for it to end: nothing is queued.
   */
  caughtUp(events: OrderEvent[]): void {
    if (this.closed) return;
    if (this.#liveQueue) this.#checkDue = true;
    else if (this.at.id === null || events.some((e) => e.seq === this.at.seq)) this.deliver(events);
    else this.#fillChecked();
  }

  /** Resets to the store's newest position, holding live events while it asks where that is. */
  #startOver(): void {
    if (this.#liveQueue) return; // a fill is running: it checks the history itself
    this.#liveQueue = [];
    newestPosition(this.options.store, this.userId)
      .then((at) => this.#reset(at, RESET_REASONS.historyChanged))
      .then(() => this.#goLive())
      .catch((err) => this.end("catch-up failed", messageOf(err)));
  }

  #reset(at: Position, reason: string): void {
    this.at = at;
    this.sendReset(at, reason);
  }

  #sendAll(events: OrderEvent[], live: boolean, shared?: SharedFrames): void {
    const last = events[events.length - 1];
    this.at = { seq: last.seq, id: last.id };
    this.send(events, live, shared);
  }
}

/** An error's message, for the log. */
export const messageOf = (err: unknown) => err instanceof Error ? err.message : String(err);
