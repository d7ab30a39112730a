/**
 * Server-Sent Events: framing, and one open stream with its resume logic and bounded queue.
 *
 * A stream registers with the hub BEFORE it replays from the store, holding live events aside;
 * after the replay it sends only what is newer than the last replayed seq. So an event that lands
 * during the replay is neither dropped nor repeated. Any gap (seq jumps, e.g. after the change feed
 * reconnects) is filled from the store, never skipped.
 *
 * Its bytes go to a sink the server adapter provides (realtime/stream_sink.ts: a ReadableStream
 * body under Deno.serve, the response itself under node:http); the sink's backlog is the
 * backpressure signal. Every byte it sends is framed by realtime/sse_frame.ts; an event's frame is
 * built once and shared by all the user's streams.
 */
import type { ResumePoint } from "../orders/event_id.ts";
import type { OrderEvent } from "../orders/model.ts";
import type { EventLog } from "../store/store.ts";
import type { CloseReason, Hub, RealtimeStatus, Subscriber } from "./hub.ts";
import type { Metrics } from "./metrics.ts";
import { type BatchFrames, encodeSse, type SharedFrames } from "./sse_frame.ts";
import {
  batchCacheFor,
  batchMessage,
  eventIdAt,
  eventMessage,
  sameHistory,
  type StreamFormat,
} from "./stream_format.ts";
import { type StreamSink, webStreamSink } from "./stream_sink.ts";

/** What one stream needs. */
export interface StreamOptions {
  userId: string;
  sessionId: string;
  store: Pick<EventLog, "eventsSince" | "currentSeq" | "oldestSeq">;
  hub: Hub;
  format: StreamFormat;
  /** Where the client resumes from (null: live from the user's current seq). */
  resumeFrom: ResumePoint | null;
  /** Messages a client may fall behind by before its stream is closed. */
  queueLimit: number;
  /** The `retry:` hint, ms. */
  retryMs: number;
  metrics?: Metrics;
  /** Called once when the stream ends, with why (and, for a failure, the error's message). */
  onClose?: (reason: CloseReason, detail?: string) => void;
  /**
   * The request's signal: aborts as soon as the client's connection closes, so a dropped stream
   * leaves the hub (and frees its place under the per-user cap) at once, not at the next write.
   */
  signal?: AbortSignal;
  /** Where the bytes go (the server adapter's); a ReadableStream body when not given. */
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
  #lastSeq = 0;
  /** Live events held while replaying or filling a gap from the store. */
  #held: OrderEvent[] | null = [];
  /** Events waiting for the coalescing window (HTML). */
  #batch: OrderEvent[] = [];
  #batchTimer: ReturnType<typeof setTimeout> | undefined;
  #lastFlush = 0;
  #closed = false;
  #unsubscribe: () => void = () => {};
  /** Wakes a replay waiting for the client to take what was queued (see `#drained`). */
  #wakeDrained: (() => void) | null = null;
  readonly #o: StreamOptions;
  readonly #batches: BatchFrames;

  constructor(options: StreamOptions) {
    this.#o = options;
    this.userId = options.userId;
    this.sessionId = options.sessionId;
    this.#batches = batchCacheFor(options.format);
    this.sink = options.sink ?? webStreamSink();
  }

  /** The last seq sent (the hub's catch-up position). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * Registers with the hub (throws 429 past the per-user cap) and starts the replay. Resolves once
   * the stream is live; the caller returns the sink's response right away, so bytes flow as they
   * are written.
   */
  open(): Promise<void> {
    this.#unsubscribe = this.#o.hub.add(this);
    this.sink.start({
      gone: () => this.#end("client went away", false),
      drained: () => this.#wake(),
    });
    const signal = this.#o.signal;
    if (signal) {
      const gone = () => this.#end("client went away", false);
      if (signal.aborted) gone();
      else signal.addEventListener("abort", gone, { once: true });
    }
    this.#write(encodeSse({ retry: this.#o.retryMs }));
    return this.#start().catch((err) => this.#end("replay failed", true, messageOf(err)));
  }

  async #start(): Promise<void> {
    const { store, userId, resumeFrom } = this.#o;
    const current = await store.currentSeq(userId);
    if (resumeFrom === null) {
      this.#lastSeq = current;
    } else if (resumeFrom.seq > current) {
      // Ahead of the store: the store was replaced. The client must reload, not wait forever.
      await this.#reset(current, "the server has no record of that position; reload");
    } else {
      const oldest = await store.oldestSeq(userId);
      const from = resumeFrom.seq;
      if (from < current && oldest !== null && from < oldest - 1) {
        await this.#reset(current, "events since that position are no longer kept; reload");
      } else if (resumeFrom.tag !== null && !(await sameHistory(store, userId, resumeFrom))) {
        // The client's event `seq` is not this store's: a history lost and grown again (a
        // failover, a restore). Resuming would mix two histories with no sign of it.
        await this.#reset(current, "that event is not in this server's history; reload");
      } else {
        this.#lastSeq = from;
        await this.#fill();
      }
    }
    if (this.#o.hub.realtimeStatus.realtime !== "ok") this.status(this.#o.hub.realtimeStatus);
    this.#goLive();
  }

  /** Sends everything the store has after lastSeq, page by page, waiting for a slow reader. */
  async #fill(): Promise<void> {
    for (;;) {
      const page = await this.#o.store.eventsSince(this.userId, this.#lastSeq, REPLAY_PAGE);
      if (this.#closed || page.length === 0) return;
      this.#send(page, false);
      if (page.length < REPLAY_PAGE) return;
      await this.#drained();
    }
  }

  /**
   * A gap fill that outlasts a short database outage (a restart, a failover): retried with
   * backoff for about 20 s while live events wait, rather than dropping the stream at the first
   * error. Past that the stream ends and the client resumes with Last-Event-ID.
   */
  async #fillRetrying(): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#fill();
      } catch (err) {
        if (this.#closed || attempt >= FILL_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 4_000)));
      }
    }
  }

  #goLive(): void {
    const held = this.#held ?? [];
    this.#held = null;
    if (held.length > 0) this.deliver(held);
  }

  deliver(events: OrderEvent[], shared?: SharedFrames): void {
    if (this.#closed) return;
    if (this.#held) {
      this.#held.push(...events);
      return;
    }
    const fresh = events.filter((e) => e.seq > this.#lastSeq);
    if (fresh.length === 0) return;
    if (fresh[0].seq !== this.#lastSeq + 1) {
      // A gap: something was committed that this process did not hear (yet). Fill it from the
      // store, holding live events meanwhile; the store is the truth.
      this.#held = [...fresh];
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

  status(status: RealtimeStatus): void {
    this.#write(encodeSse(...this.#o.format.renderStatus(status)));
  }

  heartbeat(): void {
    this.#write(PING);
  }

  close(reason: CloseReason): void {
    this.#end(reason, true);
  }

  /** `reset`, whose id is the user's newest event's (empty when there is none); live from there. */
  async #reset(current: number, reason: string): Promise<void> {
    const id = await eventIdAt(this.#o.store, this.userId, current) ?? "";
    this.#lastSeq = current;
    this.#write(encodeSse({ id, event: "reset", data: JSON.stringify({ reason }) }));
  }

  #send(events: OrderEvent[], live: boolean, shared?: SharedFrames): void {
    this.#lastSeq = events[events.length - 1].seq;
    const { format, metrics } = this.#o;
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
    if (!live) {
      this.#write(this.#batches.batch(events, this.#batchMessage));
      return;
    }
    // HTML: at most one message per window, latest state of each order wins (render decides).
    this.#batch.push(...events);
    const wait = this.#lastFlush + format.coalesceMs - Date.now();
    if (wait <= 0 && this.#batchTimer === undefined) this.#flush();
    else this.#batchTimer ??= setTimeout(() => this.#flush(), Math.max(wait, 0));
  }

  #flush(): void {
    this.#batchTimer = undefined;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#lastFlush = Date.now();
    this.#write(this.#batches.batch(batch, this.#batchMessage));
  }

  readonly #eventMessage = (e: OrderEvent) => eventMessage(this.#o.format, e);
  readonly #batchMessage = (events: OrderEvent[]) => batchMessage(this.#o.format, events);

  #write(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.sink.backlog > this.#o.queueLimit) {
      // Too far behind; it resumes with Last-Event-ID rather than being buffered here.
      this.#end("slow consumer", true);
      return;
    }
    if (!this.sink.write(bytes)) this.#end("client went away", false);
  }

  /**
   * Replay pacing: past half a page still queued, waits until the client has taken everything
   * (the sink's drained) or the stream ends — awaited, not polled.
   */
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
    if (this.#batchTimer !== undefined) {
      clearTimeout(this.#batchTimer);
      this.#flush();
    }
    this.#closed = true;
    this.#wake();
    this.#unsubscribe();
    this.#o.metrics?.streamsClosed.inc({ reason });
    if (closeBody) this.sink.end();
    this.#o.onClose?.(reason, detail);
  }
}

/** The heartbeat: the same bytes for every stream, every tick. */
const PING = encodeSse({ comment: "ping" });

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
