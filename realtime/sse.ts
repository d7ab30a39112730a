/**
 * One open Server-Sent Events stream: a `Follower` (realtime/follower.ts: order, resume, gaps,
 * history) whose messages are SSE frames. Bytes go to the server adapter's sink
 * (stream_sink.ts), whose backlog is the backpressure signal; frames are built by sse_frame.ts,
 * once per event for all the user's streams. The HTML stream is paced by coalescer.ts.
 */
import type { Logger } from "../log.ts";
import type { OrderEvent } from "../orders/model.ts";
import { Coalescer } from "./coalescer.ts";
import { Follower, type FollowerOptions, REPLAY_PAGE } from "./follower.ts";
import type { CloseReason, RealtimeStatus } from "./hub.ts";
import type { Metrics } from "./metrics.ts";
import type { Position } from "./resume.ts";
import { type BatchFrames, encodeSse, type SharedFrames } from "./sse_frame.ts";
import {
  batchCacheFor,
  type MessageBuilders,
  messageBuildersFor,
  type StreamFormat,
} from "./stream_format.ts";
import { type StreamSink, webStreamSink } from "./stream_sink.ts";

/** What one stream needs. */
export interface StreamOptions extends FollowerOptions {
  format: StreamFormat;
  /** The `retry:` hint, ms. */
  retryMs: number;
  /** The heartbeat interval, told to the client first (`: heartbeat_ms=N`). */
  heartbeatMs: number;
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

/** One open SSE stream: a hub subscriber that writes to its sink. */
export class EventStream extends Follower {
  /** Where the bytes go; the route answers with `sink.response(headers)`. */
  readonly sink: StreamSink;
  /** Live HTML messages, paced; none for the JSON format, which sends each event at once. */
  readonly #paced: Coalescer | null;
  /** Wakes a replay waiting for the client to take what was queued (see `drained`). */
  #wakeDrained: (() => void) | null = null;
  readonly #stream: StreamOptions;
  readonly #batches: BatchFrames;
  readonly #build: MessageBuilders;

  constructor(options: StreamOptions) {
    super(options);
    this.#stream = options;
    this.#batches = batchCacheFor(options.format);
    this.#build = messageBuildersFor(options.format);
    // Only a paced format pays for a coalescer (and its closure) in every stream.
    this.#paced = options.format.coalesceMs > 0
      ? new Coalescer(
        options.format.coalesceMs,
        (events) => this.#write(this.#batches.batch(events, this.#build.batch)),
      )
      : null;
    this.sink = options.sink ?? webStreamSink();
  }

  /**
   * Registers with the hub (throws 429 past the per-user cap) and starts the replay. Resolves once
   * live; the caller returns the sink's response at once, so bytes flow as they are written.
   */
  open(): Promise<void> {
    this.register();
    this.sink.start({
      gone: () => this.end("client went away"),
      drained: () => this.#wake(),
    });
    const signal = this.#stream.signal;
    if (signal) {
      // The stream itself listens (handleEvent): no closure kept per stream.
      if (signal.aborted) this.handleEvent();
      else signal.addEventListener("abort", this, { once: true });
    }
    this.#write(encodeSse({ retry: this.#stream.retryMs }));
    this.#write(encodeSse({ comment: `heartbeat_ms=${this.#stream.heartbeatMs}` }));
    return this.follow();
  }

  status(status: RealtimeStatus): void {
    this.#write(encodeSse(...this.#stream.format.renderStatus(status)));
  }

  heartbeat(): void {
    this.#write(PING);
  }

  close(reason: CloseReason): void {
    this.end(reason);
  }

  /** The request was aborted (this is its signal's `abort` listener): the client went away. */
  handleEvent(): void {
    this.end("client went away");
  }

  /** `reset`, whose id is `at`'s (empty when there is none); live from there. */
  protected sendReset(at: Position, reason: string): void {
    this.#paced?.end(); // what it holds is older than the reset: it goes first, never after
    this.#write(encodeSse({ id: at.id ?? "", event: "reset", data: JSON.stringify({ reason }) }));
  }

  protected send(events: OrderEvent[], live: boolean, shared?: SharedFrames): void {
    const { format, metrics } = this.#stream;
    if (live && metrics) {
      const now = Date.now();
      for (const e of events) metrics.deliveryLatency.observe((now - Date.parse(e.at)) / 1000);
    }
    metrics?.eventsDelivered.inc({ format: format.name }, events.length);
    if (!this.#paced) {
      const build = this.#build.event;
      for (const e of events) {
        this.#write(shared ? shared.event(format, e, build) : encodeSse(build(e)));
      }
      return;
    }
    if (live) this.#paced.add(events);
    else this.#write(this.#batches.batch(events, this.#build.batch));
  }

  #write(bytes: Uint8Array): void {
    if (this.closed) return;
    if (this.sink.backlog > this.#stream.queueLimit) {
      // Too far behind; it resumes with Last-Event-ID rather than being buffered here.
      this.end("slow consumer");
      return;
    }
    if (!this.sink.write(bytes)) this.end("client went away");
  }

  /** Replay pacing: past half a page queued, waits (not polls) for the sink's drained or the end. */
  protected async drained(): Promise<void> {
    if (this.closed || this.sink.backlog <= REPLAY_PAGE / 2) return;
    await new Promise<void>((resolve) => (this.#wakeDrained = resolve));
  }

  #wake(): void {
    const wake = this.#wakeDrained;
    this.#wakeDrained = null;
    wake?.();
  }

  protected end(reason: CloseReason, detail?: string): void {
    if (this.closed) return;
    this.#paced?.end();
    this.closed = true;
    this.#wake();
    this.unregister();
    this.#stream.metrics?.streamsClosed.inc({ reason });
    // A client that went away has no body left to end.
    if (reason !== "client went away") this.sink.end();
    if (detail) this.#stream.log?.warn("a stream ended on a failure", { reason, err: detail });
  }
}

/** The heartbeat: the same bytes for every stream, every tick. */
const PING = encodeSse({ comment: "ping" });
