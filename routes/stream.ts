/**
 * The two streams: `GET /api/v1/stream` (JSON OrderEvents, every event) and `GET /stream` (HTML
 * fragments for htmx's hx-sse, swapped out-of-band by element id, coalesced per ~100 ms).
 * Both resume from `Last-Event-ID` (header) or `?last_event_id=` (the header wins).
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { AppError } from "../orders/errors.ts";
import { jsonOf } from "../orders/json.ts";
import type { RealtimeStatus } from "../realtime/hub.ts";
import { EventStream } from "../realtime/sse.ts";
import { resumePoint, SSE_HEADERS, type StreamFormat } from "../realtime/stream_format.ts";
import type { SseMessage } from "../realtime/sse_frame.ts";
import { type SinkFactory, webStreamSink } from "../realtime/stream_sink.ts";
import { renderStatusBanner, renderStreamBatch } from "../views/fragments.tsx";
import type { ResumeLog } from "../realtime/resume.ts";
import type { AppEnv, RouterDeps } from "./context.ts";

/** What the streams use: the hub, the store's log, and the stream settings. */
type StreamDeps = RouterDeps<"config" | "hub" | "metrics" | "log", ResumeLog>;

/** How soon clients retry after a dropped stream (they add their own backoff and jitter). */
export const RETRY_MS = 1_000;
/** The HTML stream sends at most one message per this window (latest row per order wins). */
export const HTML_COALESCE_MS = 100;

const JSON_FORMAT: StreamFormat = {
  name: "json",
  coalesceMs: 0,
  eventName: "order",
  render: (events) => jsonOf(events[0]),
  renderStatus: (s) => [statusMessage(s)],
};

const HTML_FORMAT: StreamFormat = {
  name: "html",
  coalesceMs: HTML_COALESCE_MS,
  render: (events) => renderStreamBatch(events),
  // The named event drives the connection indicator (connection.js); the unnamed one swaps the banner.
  renderStatus: (s) => [statusMessage(s), { data: renderStatusBanner(s) }],
};

function statusMessage(s: RealtimeStatus): SseMessage {
  const body = s.reason ? { realtime: s.realtime, reason: s.reason } : { realtime: s.realtime };
  return { event: "status", data: JSON.stringify(body) };
}

/**
 * The server adapter's sink for this request (server/node_listener.ts puts `openStreamSink` in the bindings under
 * node:http); without one (Deno.serve, `app.request()`), a ReadableStream body.
 */
function sinkFor(c: Context<AppEnv>) {
  const env = c.env as { openStreamSink?: SinkFactory } | undefined;
  return env?.openStreamSink?.() ?? webStreamSink();
}

/** The stream routes. */
export function streamRoutes(
  deps: StreamDeps,
  requireApiAuth: MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const open = (c: Context<AppEnv>, format: StreamFormat) => {
    const from = resumePoint(c.req.header("last-event-id"), c.req.query("last_event_id"));
    if (from === "malformed") {
      throw new AppError(
        "invalid_request",
        "Last-Event-ID must be an event id (SEQ.TAG) or a seq (a non-negative integer)",
      );
    }
    const { userId, sessionId, expiresAt } = c.get("auth");
    const sink = sinkFor(c);
    const stream = new EventStream({
      userId,
      sessionId,
      store: deps.store,
      hub: deps.hub,
      format,
      resumeFrom: from,
      expiresAt,
      queueLimit: deps.config.streamQueueLimit,
      retryMs: RETRY_MS,
      heartbeatMs: deps.config.heartbeatMs,
      metrics: deps.metrics,
      log: deps.log,
      // A sink that hears the close itself spares the request its signal (a whole Request object
      // under node:http's adapter, kept for as long as the stream is open).
      signal: sink.hearsClose ? undefined : c.req.raw.signal,
      sink,
    });
    try {
      stream.open(); // throws here, synchronously: 503 past the instance's cap, 429 the user's
    } catch (err) {
      // A crowd refused must not go on holding descriptors: the client is asked to hang up.
      if (err instanceof AppError && err.code === "unavailable") c.header("Connection", "close");
      throw err;
    }
    return stream.sink.response(SSE_HEADERS);
  };
  app.get("/api/v1/stream", requireApiAuth, (c) => open(c, JSON_FORMAT));
  app.get("/stream", requireApiAuth, (c) => open(c, HTML_FORMAT));
  return app;
}
