/**
 * The list into the view: when a list read from the server replaces the view, and what that tells
 * listeners; the stored view read back at a cold start; and the browser's "we are back" moments.
 */
import type { Emitter } from "./events.ts";
import type { Order, ReloadReason } from "./types.ts";
import { type OrderView, seqOf } from "./view.ts";

/**
 * Replaces the view with a list read at `lastEventId` (`why`: a reload, said to listeners);
 * answers whether it did. A poll's list older than the view (a live connection applied events
 * past it) is kept out unless `alone`; alone, a list that went back, or that names another event
 * at the view's seq, is another history: a `history` reload.
 */
export function replaceWithList(
  view: OrderView,
  events: Emitter,
  list: { orders: Order[]; lastEventId: string | null },
  why: ReloadReason | null,
  alone: boolean,
): boolean {
  const { orders, lastEventId } = list;
  const [now, mine] = [seqOf(lastEventId), seqOf(view.lastEventId)];
  if (why === null && !alone && now < mine) return false;
  const history = why === null && view.lastEventId !== null &&
    (now < mine || (now === mine && lastEventId !== view.lastEventId));
  const before = new Map(view.orders().map((o) => [o.id, JSON.stringify(o)]));
  view.replace(orders, lastEventId);
  if (why ?? history) events.emit("reload", why ?? "history");
  for (const o of orders) if (before.get(o.id) !== JSON.stringify(o)) events.emit("order", o, null);
  return true;
}

/** The stored view, or null when there is none or it is not one (a corrupt value starts afresh). */
export function parseStored(text: string | null | undefined) {
  try {
    const v = text ? JSON.parse(text) : null;
    return Array.isArray(v?.orders) ? v as { orders: Order[]; lastEventId: string | null } : null;
  } catch {
    return null;
  }
}

/**
 * Browsers: `back` runs when the network returns (`online`) or the page comes back from the
 * back-forward cache (`pageshow`); answers whether it could listen (false off a browser).
 */
export function onPageBack(back: () => void): boolean {
  const g = globalThis as unknown as {
    addEventListener?: (type: string, fn: (e: { persisted?: boolean }) => void) => void;
    document?: unknown;
  };
  if (!g.addEventListener || !g.document) return false;
  g.addEventListener("online", back);
  g.addEventListener("pageshow", (e) => e.persisted && back());
  return true;
}
