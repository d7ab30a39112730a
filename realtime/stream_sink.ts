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
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let events: SinkEvents | null = null;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    pull: () => events?.drained(),
    cancel: () => events?.gone(),
  }, { highWaterMark: 0 });
  return {
    start(e) {
      events = e;
    },
    hearsClose: false,
    write(bytes) {
      try {
        controller.enqueue(bytes);
        return true;
      } catch {
        // enqueue throws only once the body is closed or errored: the client is gone.
        return false;
      }
    },
    get backlog() {
      // desiredSize goes below zero by one per message the client has not taken yet.
      return -Math.min(controller.desiredSize ?? 0, 0);
    },
    end() {
      try {
        controller.close();
      } catch {
        // Already closed or cancelled by the client: there is nothing left to end.
      }
    },
    response: (headers) => new Response(body, { headers }),
  };
}
