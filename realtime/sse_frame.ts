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
 * It also holds the encode-once pieces: one event's frame is the same bytes for every stream of
 * its user, so it is built once per publish and shared (`SharedFrames`); the HTML stream's
 * coalesced batches likewise (`batchFrames`).
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
const HAS_LINE_BREAK = /[\r\n]/;
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
  if (msg.id !== undefined) {
    // A number cannot hold a line break; only a string id needs the check.
    out += `id: ${typeof msg.id === "number" ? msg.id : checkedField("id", msg.id)}\n`;
  }
  if (msg.event) out += `event: ${checkedField("event", msg.event)}\n`;
  if (msg.data !== undefined) {
    // One line (every JSON event) is the common case: no split, no array.
    if (!HAS_LINE_BREAK.test(msg.data)) out += `data: ${msg.data}\n`;
    else for (const line of msg.data.split(LINE_BREAK)) out += `data: ${line}\n`;
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
 * One publish's frames, shared by the streams it reaches. The hub makes one per publish when a
 * user has more than one stream (and none for a single stream, which would only pay for the
 * cache): the first stream builds an event's frame, the others write the very same bytes. It
 * lives only as long as the publish, so it needs no bound or eviction.
 */
export class SharedFrames {
  readonly #byFormat = new Map<object, Map<OrderEvent, Uint8Array>>();

  /** The frame of `event` in `format` (the stream's format object), built on first ask. */
  event(format: object, event: OrderEvent, build: (event: OrderEvent) => SseMessage): Uint8Array {
    let frames = this.#byFormat.get(format);
    if (!frames) this.#byFormat.set(format, frames = new Map());
    let bytes = frames.get(event);
    if (!bytes) frames.set(event, bytes = encodeSse(build(event)));
    return bytes;
  }
}

/**
 * The HTML stream's frames for coalesced batches. Streams of one user that flush the same events
 * in a window (the usual case: the same publish reached each) share one rendering; any other
 * batch is built afresh. Keyed weakly by the batch's last event, so entries go with the events.
 */
export interface BatchFrames {
  /** The frame for `events` (built by `build` unless the same events were just framed). */
  batch(events: OrderEvent[], build: (events: OrderEvent[]) => SseMessage): Uint8Array;
}

/** A new batch-frame cache (one per stream format). */
export function batchFrames(): BatchFrames {
  const batches = new WeakMap<OrderEvent, { events: OrderEvent[]; bytes: Uint8Array }>();
  return {
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
