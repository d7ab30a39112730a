/**
 * The app socket's live part (CONTRACT: `GET /api/v1/ws`): a `Follower` (realtime/follower.ts:
 * order, resume, gaps, history) whose messages are JSON text frames on a WebSocket — `ready`,
 * `event`, `reset`, `status`, `ping` — and whose ends are close codes. The handshake before it
 * (`hello`, credentials, `auth` refreshes) is routes/socket.ts's; this class starts once the
 * client is known.
 */
import type { Logger } from "../log.ts";
import { jsonOf } from "../orders/json.ts";
import type { OrderEvent } from "../orders/model.ts";
import { Follower, type FollowerOptions, REPLAY_PAGE } from "./follower.ts";
import type { CloseReason, RealtimeStatus } from "./hub.ts";
import type { Metrics } from "./metrics.ts";
import type { Position } from "./resume.ts";

/** The close codes of the app socket (CONTRACT), by why it ended. */
export const CLOSE_CODES: Readonly<Record<CloseReason, number>> = {
  "client went away": 1000,
  "slow consumer": 4408,
  "session revoked": 4403,
  "logged out": 4403,
  "server shutting down": 1012,
  "replay failed": 1011,
  "catch-up failed": 1011,
  "credentials expired": 4401,
};

/**
 * Bytes a client may leave unread before its socket is closed with 4408: STREAM_QUEUE_LIMIT
 * events of about this size each (an OrderEvent's JSON is 0.8–1.2 KB). A WebSocket reports what
 * it has not yet handed to the network in bytes (`bufferedAmount`), not in messages.
 */
const BYTES_PER_QUEUED_EVENT = 1_024;
/** How often a replay waiting for the client to read looks again (WebSocket has no drain event). */
const DRAIN_POLL_MS = 10;

/** What one app socket needs besides its follower's options. */
export interface AppSocketOptions extends FollowerOptions {
  socket: WebSocket;
  heartbeatMs: number;
  metrics?: Metrics;
  log?: Pick<Logger, "warn">;
}

/** One authenticated app socket, following its user's events. */
export class AppSocket extends Follower {
  readonly #socket: WebSocket;
  readonly #app: AppSocketOptions;
  #whenClosed: Promise<void> | null = null;

  constructor(options: AppSocketOptions) {
    super(options);
    this.#app = options;
    this.#socket = options.socket;
  }

  /**
   * Settles once the socket has closed (its close frame sent and answered, or dropped). Made when
   * first asked (at shutdown), not as every socket opens: a promise and a listener held for the
   * whole life of each idle connection, for a question asked once.
   */
  get whenClosed(): Promise<void> {
    return this.#whenClosed ??= this.#socket.readyState === WebSocket.CLOSED
      ? Promise.resolve()
      : new Promise((resolve) =>
        this.#socket.addEventListener("close", () => resolve(), { once: true })
      );
  }

  /**
   * Registers with the hub (throws 429 past the user's cap, 503 past the instance's) and starts:
   * `ready`, the replay, then live. Resolves once live.
   */
  open(): Promise<void> {
    this.register();
    // The socket itself listens (handleEvent): no closure kept per connection.
    this.#socket.addEventListener("close", this, { once: true });
    return this.follow();
  }

  /** The socket closed (this is its `close` listener): the connection ends. */
  handleEvent(): void {
    this.end("client went away");
  }

  /** The client refreshed its credentials (`auth`): the socket now ends at their expiry, if any. */
  refreshed(expiresAt: number | undefined): void {
    this.expireAt(expiresAt);
  }

  protected override opened(at: Position): void {
    // A position whose event is no longer kept is still a position: its bare seq, never null
    // (null means "before the first event", and a client that kept it would start live).
    const id = at.id ?? (at.seq > 0 ? String(at.seq) : null);
    this.#send(
      JSON.stringify({ op: "ready", last_event_id: id, heartbeat_ms: this.#app.heartbeatMs }),
    );
  }

  protected send(events: OrderEvent[], live: boolean): void {
    const { metrics } = this.#app;
    if (live && metrics) {
      const now = Date.now();
      for (const e of events) metrics.deliveryLatency.observe((now - Date.parse(e.at)) / 1000);
    }
    metrics?.eventsDelivered.inc({ format: "socket" }, events.length);
    // Each event's JSON is made once (orders/json.ts) and shared by every connection it goes to.
    for (const e of events) this.#send(`{"op":"event","event":${jsonOf(e)}}`);
  }

  protected sendReset(at: Position): void {
    this.#send(`{"op":"reset","last_event_id":${JSON.stringify(at.id)}}`);
  }

  status(status: RealtimeStatus): void {
    this.#send(JSON.stringify({ op: "status", ...status }));
  }

  heartbeat(): void {
    this.#send(PING);
  }

  close(reason: CloseReason): void {
    this.end(reason);
  }

  #send(text: string): void {
    if (this.closed || this.#socket.readyState !== WebSocket.OPEN) return;
    if (this.#socket.bufferedAmount > this.options.queueLimit * BYTES_PER_QUEUED_EVENT) {
      // Too far behind; it resumes from its last id rather than being buffered here.
      this.end("slow consumer");
      return;
    }
    this.#socket.send(text);
  }

  /** Replay pacing: past half a page unsent, waits until the client has taken it (or the end). */
  protected async drained(): Promise<void> {
    const enough = (REPLAY_PAGE / 2) * BYTES_PER_QUEUED_EVENT;
    while (!this.closed && this.#socket.bufferedAmount > enough) {
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
  }

  protected end(reason: CloseReason, detail?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.unregister();
    this.#app.metrics?.streamsClosed.inc({ reason });
    if (reason !== "client went away" && this.#socket.readyState === WebSocket.OPEN) {
      try {
        this.#socket.close(CLOSE_CODES[reason], reason); // every reason is short: under 123 bytes
      } catch {
        // Closed meanwhile.
      }
    }
    if (detail) this.#app.log?.warn("an app socket ended on a failure", { reason, err: detail });
  }
}

/** The heartbeat: the same text for every socket, every tick. */
const PING = `{"op":"ping"}`;
