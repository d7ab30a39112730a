/**
 * One open Server-Sent Events stream: resume (realtime/resume.ts), order, and a bounded queue.
 * It registers with the hub BEFORE it replays from the store, holding live events aside, then
 * sends only what is newer than the replay: nothing dropped or repeated. A gap is filled from the
 * store, never skipped; an event of another history is never sent on top of the one it sent.
 * Bytes go to the server adapter's sink (stream_sink.ts), whose backlog is the backpressure
 * signal, framed by sse_frame.ts once per event for all the user's streams.
 */
import type { Logger } from "../log.ts";
import type { ResumePoint } from "../orders/event_id.ts";
import type { OrderEvent } from "../orders/model.ts";
import type { CloseReason, Hub, RealtimeStatus, Subscriber } from "./hub.ts";
import type { Metrics } from "./metrics.ts";
import { Coalescer } from "./coalescer.ts";
import { type BatchFrames, encodeSse, type SharedFrames } from "./sse_frame.ts";
import {
  agreesWith,
  newestPosition,
  openingFor,
  type Position,
  RESET_REASONS,
  type ResumeLog,
} from "./resume.ts";
import { batchCacheFor, batchMessage, eventMessage, type StreamFormat } from "./stream_format.ts";
import { type StreamSink, webStreamSink } from "./stream_sink.ts";

/** What one stream needs. */
export interface StreamOptions {
  userId: string;
  sessionId: string;
  store: ResumeLog;
  hub: Hub;
  format: StreamFormat;
  /** Where the client resumes from (null: live from the user's current seq). */
  resumeFrom: ResumePoint | null;
  /** Messages a client may fall behind by before its stream is closed. */
  queueLimit: number;
  /** The `retry:` hint, ms. */
  retryMs: number;
  metrics?: Metrics;
  /** Where a stream that ends on a failure (its replay or a gap fill) says why. */
  log?: Pick<Logger, "warn">;
  /**
   * The request's signal: aborts as soon as the client's connection closes, so a dropped stream
   * leaves the hub (and frees its place under the per-user cap) at once, not at the next write.
   */
  signal?: AbortSignal;
  /** Where the bytes go (the server adapter's); a ReadableStream body if not given. */
  sink?: StreamSink;
}

/** Events fetched per store round trip while replaying. */
const REPLAY_PAGE = 500;
/** Retries of a gap fill before giving up on the stream (backoff 0.25 s doubling, 4 s max). */
const FILL_RETRIES = 8;

/** One open SSE stream: a hub subscriber that writes to its sink. */
export class EventStream implements Subscriber {
  readonly userId: string;
  readonly sessionId: string;
  /** Where the bytes go; the route answers with `sink.response(headers)`. */
  readonly sink: StreamSink;
  /** What this stream sent last (or starts after): its seq and that event's full id. */
  #at: Position = { seq: 0, id: null };
  /**
   * Live events held while the stream replays or fills a gap from the store (null: live, sent as
   * they come). Bounded like the sink: past `queueLimit` the stream ends as a slow consumer and the
   * client resumes from its last id (the store has every event; holding more would only grow).
   */
  #liveQueue: OrderEvent[] | null = [];
  /** Live HTML messages, paced (the JSON format sends each event at once). */
  readonly #paced: Coalescer;
  #closed = false;
  #unsubscribe: () => void = () => {};
  /** Wakes a replay waiting for the client to take what was queued (see `#drained`). */
  #wakeDrained: (() => void) | null = null;
  readonly #options: StreamOptions;
  readonly #batches: BatchFrames;

  constructor(options: StreamOptions) {
    this.#options = options;
    this.userId = options.userId;
    this.sessionId = options.sessionId;
    this.#batches = batchCacheFor(options.format);
    this.#paced = new Coalescer(
      options.format.coalesceMs,
      (events) => this.#write(this.#batches.batch(events, this.#batchMessage)),
    );
    this.sink = options.sink ?? webStreamSink();
  }

  /** The hub's catch-up position. */
  get lastSeq(): number {
    return this.#at.seq;
  }

  /**
   * Registers with the hub (throws 429 past the per-user cap) and starts the replay. Resolves once
   * live; the caller returns the sink's response at once, so bytes flow as they are written.
   */
  open(): Promise<void> {
    this.#unsubscribe = this.#options.hub.add(this);
    this.sink.start({
      gone: () => this.#end("client went away", false),
      drained: () => this.#wake(),
    });
    const signal = this.#options.signal;
    if (signal) {
      const gone = () => this.#end("client went away", false);
      if (signal.aborted) gone();
      else signal.addEventListener("abort", gone, { once: true });
    }
    this.#write(encodeSse({ retry: this.#options.retryMs }));
    return this.#start().catch((err) => this.#end("replay failed", true, messageOf(err)));
  }

  async #start(): Promise<void> {
    const { store, resumeFrom, hub } = this.#options;
    const opening = await openingFor(store, this.userId, resumeFrom);
    this.#at = opening.at;
    if (opening.kind === "reset") this.#reset(opening.at, opening.reason);
    if (opening.kind === "replay") await this.#fill(false);
    if (hub.realtimeStatus.realtime !== "ok") this.status(hub.realtimeStatus);
    this.#goLive();
  }

  /**
   * Sends everything the store has after this stream's position, page by page, waiting for a slow
   * reader. `check`: first make sure the store's event at the position is still the one sent (a
   * gap fill: the history may have changed since); if not, `reset` to the store's newest instead.
   */
  async #fill(check: boolean): Promise<void> {
    const { store } = this.#options;
    for (let overlap = check && this.#at.id !== null ? 1 : 0;; overlap = 0) {
      const page = await store.eventsSince(this.userId, this.#at.seq - overlap, REPLAY_PAGE);
      if (this.#closed) return;
      if (overlap && (page[0]?.seq !== this.#at.seq || page[0].id !== this.#at.id)) {
        this.#reset(await newestPosition(store, this.userId), RESET_REASONS.historyChanged);
        return;
      }
      if (page.length > overlap) this.#send(page.slice(overlap), false);
      if (page.length < REPLAY_PAGE) return;
      await this.#drained();
    }
  }

  /**
   * A gap fill that outlasts a short database outage (a restart, a failover): retried with backoff
   * for ~20 s while live events wait; past that the stream ends and the client resumes.
   */
  async #fillRetrying(): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#fill(true);
      } catch (err) {
        if (this.#closed || attempt >= FILL_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 4_000)));
      }
    }
  }

  #goLive(): void {
    const held = this.#liveQueue ?? [];
    this.#liveQueue = null;
    if (held.length > 0) this.deliver(held);
  }

  deliver(events: OrderEvent[], shared?: SharedFrames): void {
    if (this.#closed) return;
    if (this.#liveQueue) {
      this.#liveQueue.push(...events);
      if (this.#liveQueue.length > this.#options.queueLimit) this.#end("slow consumer", true);
      return;
    }
    if (!agreesWith(this.#at, events)) {
      // The store's event at this stream's position is another one: the history it sent was lost
      // (a failover) and has grown again. Never send the new one on top of it.
      this.#startOver();
      return;
    }
    const fresh = events.filter((e) => e.seq > this.#at.seq);
    if (fresh.length === 0) return;
    if (fresh[0].seq !== this.#at.seq + 1) {
      // A gap: something was committed that this process did not hear (yet). Fill it from the
      // store, holding live events meanwhile; the store is the truth.
      this.#liveQueue = [...fresh];
      this.#fillRetrying().then(() => this.#goLive()).catch((err) =>
        this.#end("catch-up failed", true, messageOf(err))
      );
      return;
    }
    // Contiguous from here; anything after an internal jump is held back for a fill.
    let n = 1;
    while (n < fresh.length && fresh[n].seq === fresh[n - 1].seq + 1) n++;
    this.#send(fresh.slice(0, n), true, shared);
    if (n < fresh.length) this.deliver(fresh.slice(n), shared);
  }

  /**
   * The feed's catch-up (Subscriber). The store no longer having the event this stream sent last,
   * or having another there, means its history was lost: `reset`. (A list cut short before this
   * stream's position cannot tell; the next event's own check or a gap fill's will.)
   */
  caughtUp(events: OrderEvent[], complete: boolean): void {
    if (this.#closed) return;
    const there = events.some((e) => e.seq === this.#at.seq);
    if (!this.#liveQueue && this.#at.id !== null && !there && complete) this.#startOver();
    else this.deliver(events);
  }

  /** Resets to the store's newest position, holding live events while it asks where that is. */
  #startOver(): void {
    if (this.#liveQueue) return; // a fill is running: it checks the history itself
    this.#liveQueue = [];
    newestPosition(this.#options.store, this.userId)
      .then((at) => this.#reset(at, RESET_REASONS.historyChanged))
      .then(() => this.#goLive())
      .catch((err) => this.#end("catch-up failed", true, messageOf(err)));
  }

  status(status: RealtimeStatus): void {
    this.#write(encodeSse(...this.#options.format.renderStatus(status)));
  }

  heartbeat(): void {
    this.#write(PING);
  }

  close(reason: CloseReason): void {
    this.#end(reason, true);
  }

  /** `reset`, whose id is `at`'s (empty when there is none); live from there. */
  #reset(at: Position, reason: string): void {
    this.#at = at;
    this.#write(encodeSse({ id: at.id ?? "", event: "reset", data: JSON.stringify({ reason }) }));
  }

  #send(events: OrderEvent[], live: boolean, shared?: SharedFrames): void {
    const last = events[events.length - 1];
    this.#at = { seq: last.seq, id: last.id };
    const { format, metrics } = this.#options;
    if (live && metrics) {
      const now = Date.now();
      for (const e of events) metrics.deliveryLatency.observe((now - Date.parse(e.at)) / 1000);
    }
    metrics?.eventsDelivered.inc({ format: format.name }, events.length);
    if (format.coalesceMs <= 0) {
      for (const e of events) {
        this.#write(
          shared ? shared.event(format, e, this.#eventMessage) : encodeSse(this.#eventMessage(e)),
        );
      }
      return;
    }
    if (live) this.#paced.add(events);
    else this.#write(this.#batches.batch(events, this.#batchMessage));
  }

  readonly #eventMessage = (e: OrderEvent) => eventMessage(this.#options.format, e);
  readonly #batchMessage = (events: OrderEvent[]) => batchMessage(this.#options.format, events);

  #write(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.sink.backlog > this.#options.queueLimit) {
      // Too far behind; it resumes with Last-Event-ID rather than being buffered here.
      this.#end("slow consumer", true);
      return;
    }
    if (!this.sink.write(bytes)) this.#end("client went away", false);
  }

  /** Replay pacing: past half a page queued, waits (not polls) for the sink's drained or the end. */
  async #drained(): Promise<void> {
    if (this.#closed || this.sink.backlog <= REPLAY_PAGE / 2) return;
    await new Promise<void>((resolve) => (this.#wakeDrained = resolve));
  }

  #wake(): void {
    const wake = this.#wakeDrained;
    this.#wakeDrained = null;
    wake?.();
  }

  #end(reason: CloseReason, closeBody: boolean, detail?: string): void {
    if (this.#closed) return;
    this.#paced.end();
    this.#closed = true;
    this.#wake();
    this.#unsubscribe();
    this.#options.metrics?.streamsClosed.inc({ reason });
    if (closeBody) this.sink.end();
    if (detail) this.#options.log?.warn("a stream ended on a failure", { reason, err: detail });
  }
}

/** The heartbeat: the same bytes for every stream, every tick. */
const PING = encodeSse({ comment: "ping" });

const messageOf = (err: unknown) => err instanceof Error ? err.message : String(err);
