/**
 * The one writer of the Server-Sent Events wire format. Every message a stream sends — an event,
 * a status, a reset, the `retry:` hint, the `: ping` heartbeat — is built by `sseFrame`, so the
 * rules live here once (as Hono's `writeSSE` and Mercure keep them):
 * - `data` may span lines: each line becomes its own `data:` line (the client joins them with
 *   "\n"), so no payload can end a message early or inject a field;
 * - `id` and `event` are single tokens: a CR, LF or NUL in one is a programming error and throws,
 *   because a client would read it as a different message (or, for NUL, ignore the id);
 * - `retry` is a non-negative integer of milliseconds.
 *
 * It also holds the encode-once caches: one event's frame is the same bytes for every stream of
 * its user, so it is built once per event and shared (see `frameCache`).
 */
import type { OrderEvent } from "../orders/model.ts";

/** One SSE message. Fields are written in this order: comment, retry, id, event, data. */
export interface SseMessage {
  /** A comment line (`: text`), ignored by clients; the heartbeat is `{ comment: "ping" }`. */
  comment?: string;
  /** The reconnection delay hint, ms. */
  retry?: number;
  /** The message id (Last-Event-ID on reconnect). */
  id?: number | string;
  /** The event name; omitted (or empty) for unnamed messages, which htmx's hx-sse swaps. */
  event?: string;
  /** The payload; may contain newlines (split into `data:` lines). */
  data?: string;
}

const LINE_BREAK = /\r\n|\r|\n/;
const FORBIDDEN_IN_FIELD = /[\r\n\0]/;

function checkedField(name: "id" | "event", value: string): string {
  if (FORBIDDEN_IN_FIELD.test(value)) {
    throw new TypeError(`SSE ${name} must not contain CR, LF or NUL: ${JSON.stringify(value)}`);
  }
  return value;
}

/** The text of one SSE message, ending with the blank line. Throws on a malformed field. */
export function sseFrame(msg: SseMessage): string {
  let out = "";
  if (msg.comment !== undefined) {
    for (const line of msg.comment.split(LINE_BREAK)) out += line === "" ? ":\n" : `: ${line}\n`;
  }
  if (msg.retry !== undefined) {
    if (!Number.isSafeInteger(msg.retry) || msg.retry < 0) {
      throw new TypeError(`SSE retry must be a non-negative integer of ms: ${msg.retry}`);
    }
    out += `retry: ${msg.retry}\n`;
  }
  if (msg.id !== undefined) out += `id: ${checkedField("id", String(msg.id))}\n`;
  if (msg.event) out += `event: ${checkedField("event", msg.event)}\n`;
  if (msg.data !== undefined) {
    for (const line of msg.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  }
  if (out === "") throw new TypeError("An SSE message needs at least one field");
  return `${out}\n`;
}

const encoder = new TextEncoder();

/** `sseFrame` as the UTF-8 bytes a stream body enqueues. */
export function encodeSse(...messages: SseMessage[]): Uint8Array {
  return encoder.encode(messages.map(sseFrame).join(""));
}

/**
 * Frames built once and shared. The hub hands the same event objects to every stream of a user
 * (live, and after a catch-up), so a cache keyed by the event object turns N encodings into one;
 * entries go when the events do (WeakMap).
 */
export interface FrameCache {
  /** The frame for one event (built on first use, then the same bytes for every stream). */
  event(event: OrderEvent, build: (event: OrderEvent) => SseMessage): Uint8Array;
  /**
   * The frame for a batch (the HTML stream's coalescing window). Streams of one user that flush
   * the same events in a window share one rendering; any other batch is built afresh.
   */
  batch(events: OrderEvent[], build: (events: OrderEvent[]) => SseMessage): Uint8Array;
}

/** A new, empty frame cache (one per stream format). */
export function frameCache(): FrameCache {
  const single = new WeakMap<OrderEvent, Uint8Array>();
  const batches = new WeakMap<OrderEvent, { events: OrderEvent[]; bytes: Uint8Array }>();
  return {
    event(event, build) {
      let bytes = single.get(event);
      if (!bytes) single.set(event, bytes = encodeSse(build(event)));
      return bytes;
    },
    batch(events, build) {
      const last = events[events.length - 1];
      const hit = batches.get(last);
      if (
        hit && hit.events.length === events.length && hit.events.every((e, i) => e === events[i])
      ) {
        return hit.bytes;
      }
      const bytes = encodeSse(build(events));
      batches.set(last, { events: [...events], bytes });
      return bytes;
    },
  };
}
