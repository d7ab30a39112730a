/**
 * Where an open stream's bytes go: a small sink the HTTP server adapter provides (server/), so
 * the stream never knows which server carries it. Under Deno.serve the sink is a ReadableStream
 * body (below); under node:http it is the response itself (`res.write`, server/node_listener.ts), with no Web
 * stream in between, which is what keeps an idle stream's memory small (docs/tech-choices.md).
 *
 * Backpressure is counted in messages, the same under both: a write the client has not taken yet
 * adds one to `backlog`; the stream closes a reader that falls too far behind.
 */

/** What the sink tells its stream. */
export interface SinkEvents {
  /** The client's connection closed (or the body was cancelled): the stream ends at once. */
  gone(): void;
  /** The client has taken everything written so far (`backlog` is back to 0). */
  drained(): void;
}

/** One stream's way out to its client. */
export interface StreamSink {
  /**
   * Called once the stream is accepted (after the per-user cap), before its first write: from
   * here the sink reports to `events`. A sink that is never started sends nothing of its own, so
   * the route's error answer (429) goes out instead.
   */
  start(events: SinkEvents): void;
  /** Queues bytes for the client; false when the client is already gone. */
  write(bytes: Uint8Array): boolean;
  /**
   * Whether `gone` fires as soon as the connection drops (node:http's `close`), so the stream
   * needs no request signal; a Web stream body hears it only at its next write.
   */
  readonly hearsClose: boolean;
  /** Messages written that the client has not taken yet. */
  readonly backlog: number;
  /** Ends the response (the client reconnects with Last-Event-ID). */
  end(): void;
  /** What the route returns for this stream, with the given headers. */
  response(headers: Readonly<Record<string, string>>): Response;
}

/** Makes the sink for one request (given to the app by the server adapter). */
export type SinkFactory = () => StreamSink;

/**
 * The Web stream body: a ReadableStream with highWaterMark 0 (the cheapest body Deno.serve sends;
 * DESIGN.md field notes). Its queue length is the backlog; `pull` runs when the reader waits on
 * an empty queue, i.e. the client has taken everything.
 */
export function webStreamSink(): StreamSink {
  return new WebStreamSink();
}

/**
 * A class, not an object of closures: one lives as long as each idle stream, tens of thousands at
 * once, and methods on the prototype cost nothing per stream where the closures kept eight
 * functions and their scope with every one (bench/README.md, "20,000 connections on one
 * instance").
 */
class WebStreamSink implements StreamSink {
  readonly hearsClose = false;
  /** Set by the body's `start`, which runs inside the ReadableStream constructor. */
  controller!: ReadableStreamDefaultController<Uint8Array>;
  events: SinkEvents | null = null;
  readonly #body = new ReadableStream<Uint8Array>(new BodySource(this), { highWaterMark: 0 });

  start(events: SinkEvents): void {
    this.events = events;
  }

  write(bytes: Uint8Array): boolean {
    try {
      this.controller.enqueue(bytes);
      return true;
    } catch {
      // enqueue throws only once the body is closed or errored: the client is gone.
      return false;
    }
  }

  get backlog(): number {
    // desiredSize goes below zero by one per message the client has not taken yet.
    return -Math.min(this.controller.desiredSize ?? 0, 0);
  }

  end(): void {
    try {
      this.controller.close();
    } catch {
      // Already closed or cancelled by the client: there is nothing left to end.
    }
  }

  response(headers: Readonly<Record<string, string>>): Response {
    return new Response(this.#body, { headers });
  }
}

/** The body's underlying source: hands the controller to its sink and reports to its events. */
class BodySource implements UnderlyingDefaultSource<Uint8Array> {
  constructor(readonly sink: WebStreamSink) {}

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.sink.controller = controller;
  }

  pull(): void {
    this.sink.events?.drained();
  }

  cancel(): void {
    this.sink.events?.gone();
  }
}
