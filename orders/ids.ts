/** Identifiers: UUIDv7 for orders (time-ordered, so ids sort newest-last and index well). */
import { AppError } from "./errors.ts";

let lastMs = 0;
let counter = 0;

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version and variant bits, random bits. Within
 * one process ids are strictly increasing (RFC 9562 method 1: a 12-bit counter in rand_a seeded
 * at random each millisecond), so "newest first" holds even for orders placed in the same ms.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  if (now > lastMs) {
    lastMs = now;
    counter = bytes[6] & 0x07; // leave room to count up before the ms must advance
  } else if (++counter > 0xfff) {
    lastMs++;
    counter = 0;
  }
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** Whether a string is a well-formed UUID (any version), lower or upper case. */
export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

/**
 * An order id from a request (a path segment): checked for shape (400 otherwise, before any
 * lookup, so a malformed id never reaches the store) and lower-cased, as ids are stored.
 */
export function orderIdOf(raw: string): string {
  if (!isUuid(raw)) throw new AppError("invalid_request", "order id must be a UUID");
  return raw.toLowerCase();
}
