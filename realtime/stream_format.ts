/**
 * What a stream speaks, apart from the stream itself: the response headers, where a client
 * resumes from, and the format (JSON or HTML) that turns events into messages, with the batch
 * frames each format's streams share.
 */
import type { OrderEvent } from "../orders/model.ts";
import type { RealtimeStatus } from "./hub.ts";
import { type BatchFrames, batchFrames, type SseMessage } from "./sse_frame.ts";

/** The headers every stream answers with. */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  // Exactly as CONTRACT gives it (an event stream is UTF-8 by definition).
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
});

/**
 * Reads the resume point: `Last-Event-ID` wins over `?last_event_id=`. Returns null when neither
 * is given, and "malformed" when the one that counts is not a non-negative integer.
 */
export function resumePoint(
  header: string | undefined | null,
  query: string | undefined | null,
): number | null | "malformed" {
  const raw = header ?? query;
  if (raw === undefined || raw === null) return null;
  if (!/^\d+$/.test(raw.trim())) return "malformed";
  // A position past any seq (however many digits) is "ahead": the stream answers `reset`.
  return Math.min(Number(raw.trim()), Number.MAX_SAFE_INTEGER);
}

/** How a stream turns events into messages: JSON (every event) or HTML (coalesced). */
export interface StreamFormat {
  readonly name: "json" | "html";
  /** Holds events for up to this long and sends the batch as one message (0: send each). */
  readonly coalesceMs: number;
  /** The SSE `event:` name of event messages (JSON: "order"); none for htmx, which swaps only
   * unnamed messages. */
  readonly eventName?: string;
  /** The `data` for a batch of events; the stream adds the `id:` of the batch's last seq. */
  render(events: OrderEvent[]): string;
  /** The messages that tell the client the realtime status (and, for HTML, the banner). */
  renderStatus(status: RealtimeStatus): SseMessage[];
}

/** One batch cache per format, so the streams of a format share the batches they frame. */
const batchCaches = new WeakMap<StreamFormat, BatchFrames>();

/** The batch-frame cache every stream of `format` shares. */
export function batchCacheFor(format: StreamFormat): BatchFrames {
  let cache = batchCaches.get(format);
  if (!cache) batchCaches.set(format, cache = batchFrames());
  return cache;
}

/** One event as its own message (JSON, every event): the same for every stream of its user. */
export function eventMessage(format: StreamFormat, e: OrderEvent): SseMessage {
  return { id: e.seq, event: format.eventName, data: format.render([e]) };
}

/** A batch as one message (HTML: unnamed, which htmx swaps), with the id of its last seq. */
export function batchMessage(format: StreamFormat, events: OrderEvent[]): SseMessage {
  return {
    id: events[events.length - 1].seq,
    event: format.eventName,
    data: format.render(events),
  };
}
