/**
 * Event ids, `SEQ.TAG` (CONTRACT): the user's seq and random bits fixed when the event is
 * committed. A store can lose its newest events and grow new ones under the same seqs (a failover
 * to a standby that had not received them, a restore from backup); the tag tells the two
 * histories apart, so a client is never resumed into another history. Pure: no I/O.
 */

/** A tag: 6–16 characters of base64url's alphabet. */
const TAG = /^[A-Za-z0-9_-]{6,16}$/;
/** A resume point: a bare seq, or seq and tag. */
const RESUME = /^(\d+)(?:\.([^.]*))?$/;

/** Where a client resumes from: after `seq`, and only onto the history whose event `seq` is `tag`. */
export interface ResumePoint {
  seq: number;
  /** null: a bare seq, resumed by seq alone (a client that kept only the seq). */
  tag: string | null;
}

/** Fresh random bits for an event being committed: 8 base64url characters (48 bits). */
export function newTag(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** The id of event `seq` with `tag`. */
export function eventId(seq: number, tag: string): string {
  return `${seq}.${tag}`;
}

/** The tag of an event id (`SEQ.TAG`). */
export function tagOf(id: string): string {
  return id.slice(id.indexOf(".") + 1);
}

/**
 * Reads a client's resume point: `SEQ` or `SEQ.TAG`; anything else — a tag of the wrong length
 * or alphabet, a sign, a second dot — is "malformed" (a 400). A seq past any real one (however
 * many digits) stays "ahead", which the stream answers with `reset`.
 */
export function parseResumePoint(raw: string): ResumePoint | "malformed" {
  const m = RESUME.exec(raw.trim());
  if (!m) return "malformed";
  const tag = m[2] ?? null;
  if (tag !== null && !TAG.test(tag)) return "malformed";
  return { seq: Math.min(Number(m[1]), Number.MAX_SAFE_INTEGER), tag };
}

/**
 * The id of an event committed before ids had tags: derived from what the event holds (its seq,
 * time, type and order), so it is the same on every read, and two different events at one seq —
 * two histories — differ in it. Events written since carry random bits of their own.
 */
export function legacyEventId(e: { seq: number; at: string; type: string; order: { id: string } }) {
  // FNV-1a, twice with different offsets, for 48 bits: not a secret, only a fingerprint.
  const text = `${e.seq}|${e.at}|${e.type}|${e.order.id}`;
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  const bytes = [a >>> 24, a >>> 16, a >>> 8, a, b >>> 8, b].map((x) => x & 0xff);
  const tag = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
  return eventId(e.seq, tag);
}

/** The event with its id: as stored, or derived for one committed before ids had tags. */
export function withEventId<
  E extends { id?: string; seq: number; at: string; type: string; order: { id: string } },
>(
  e: E,
): E & { id: string } {
  if (typeof e.id !== "string") e.id = legacyEventId(e);
  return e as E & { id: string };
}
