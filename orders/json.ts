/**
 * The JSON text of snapshots and events, made once per object. One report's event is written to
 * Postgres, sent on NOTIFY, framed for every stream and answered to the venue, and each of those
 * would otherwise stringify it (and the snapshot inside it) again. Snapshots and events are never
 * changed once made — the lifecycle makes new ones, and an event is complete when
 * `eventsFromSteps` returns it — so the first text made of one is its text for good. Kept only as
 * long as the object itself (a WeakMap): a snapshot the stores' caches hold keeps its text too,
 * about 1 KB more per cached order, within the caches' bounds.
 */
import type { Order, OrderEvent } from "./model.ts";

const texts = new WeakMap<Order | OrderEvent, string>();

/** `JSON.stringify(value)`, made once per object. */
export function jsonOf(value: Order | OrderEvent): string {
  let text = texts.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    texts.set(value, text);
  }
  return text;
}

/** `JSON.stringify(values)` for a list of snapshots or events, from their texts. */
export function jsonList(values: readonly (Order | OrderEvent)[]): string {
  let out = "[";
  for (let i = 0; i < values.length; i++) out += (i > 0 ? "," : "") + jsonOf(values[i]);
  return out + "]";
}
