/**
 * What a stream speaks, apart from the stream itself: the response headers, where a client
 * resumes from, and the format (JSON or HTML) that turns events into messages, with the batch
 * frames each format's streams share.
 */
import { parseResumePoint, type ResumePoint } from "../orders/event_id.ts";
import type { OrderEvent } from "../orders/model.ts";
import type { EventLog } from "../store/store.ts";
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
 * is given, and "malformed" when the one that counts is neither `SEQ` nor `SEQ.TAG`.
 */
export function resumePoint(
  header: string | undefined | null,
  query: string | undefined | null,
): ResumePoint | null | "malformed" {
  const raw = header ?? query;
  if (raw === undefined || raw === null) return null;
  return parseResumePoint(raw);
}

/** How a stream turns events into messages: JSON (every event) or HTML (coalesced). */
export interface StreamFormat {
  readonly name: "json" | "html";
  /** Holds events for up to this long and sends the batch as one message (0: send each). */
  readonly coalesceMs: number;
  /** The SSE `event:` name of event messages (JSON: "order"); none for htmx, which swaps only
   * unnamed messages. */
  readonly eventName?: string;
  /** The `data` for a batch of events; the stream adds the `id:` of the batch's last event. */
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
  return { id: e.id, event: format.eventName, data: format.render([e]) };
}

/** A batch as one message (HTML: unnamed, which htmx swaps), with the id of its last event. */
export function batchMessage(format: StreamFormat, events: OrderEvent[]): SseMessage {
  return {
    id: events[events.length - 1].id,
    event: format.eventName,
    data: format.render(events),
  };
}

/** A format's message builders, as the frame caches take them (one event, one batch). */
export interface MessageBuilders {
  event(e: OrderEvent): SseMessage;
  batch(events: OrderEvent[]): SseMessage;
}

/** One pair of builders per format, shared by its streams (not two closures in every stream). */
const builders = new WeakMap<StreamFormat, MessageBuilders>();

/** The builders every stream of `format` shares. */
export function messageBuildersFor(format: StreamFormat): MessageBuilders {
  let b = builders.get(format);
  if (!b) {
    builders.set(
      format,
      b = {
        event: (e) => eventMessage(format, e),
        batch: (events) => batchMessage(format, events),
      },
    );
  }
  return b;
}

/**
 * The full id (`SEQ.TAG`) of a user's event `seq`, for a list or a page to open its stream from;
 * null for seq 0 (no event yet). A committed event's id never changes, so reading it after the
 * list that gave its seq names the same event.
 */
export async function eventIdAt(
  log: Pick<EventLog, "eventsSince">,
  userId: string,
  seq: number,
): Promise<string | null> {
  if (seq <= 0) return null;
  const [event] = await log.eventsSince(userId, seq - 1, 1);
  // Pruned it cannot be (a user's latest event is always kept); the bare seq is still a resume.
  return event?.seq === seq ? event.id : String(seq);
}
