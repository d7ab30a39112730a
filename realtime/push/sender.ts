/**
 * The one interface every push platform's sender implements (Web Push, FCM, APNs). A sender turns
 * one alert for one target into one request, including the platform's own credential dance (an
 * access token refreshed once on 401, a provider token once on ExpiredProviderToken), and says
 * what the answer means; the dispatcher owns the queue, the retries, the deleting and the metrics.
 */
import type { Alert } from "./alert_text.ts";

/** Where an alert can go. */
export type Platform = "web" | "fcm" | "apns";

/** What one attempt came to. A sender never throws: a failure is an outcome with a reason. */
export type SendOutcome =
  | { kind: "sent" }
  /** The service is busy or away (429, 5xx, timeout, network): try again later. */
  | { kind: "retry"; reason: string; retryAfterMs: number | null }
  /** The service says the target no longer exists: forget it. */
  | { kind: "gone"; reason: string }
  /** Refused for good (a bad request, a credential the service will not take). */
  | { kind: "failed"; reason: string };

/** A platform's sender for targets of type `T` (a subscription, a device token). */
export interface Sender<T> {
  readonly platform: Platform;
  /**
   * One attempt to deliver `alert` to `target`, bounded in time (a hung service is a retry);
   * `signal` aborts it (shutdown).
   */
  send(target: T, alert: Alert, signal?: AbortSignal): Promise<SendOutcome>;
}

/** How long one request to a push service may take before it counts as failed (and is retried). */
export const SEND_TIMEOUT_MS = 10_000;

/** A request's signal: its own timeout, and the caller's abort (shutdown) when given. */
export function requestSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}

/**
 * A `Retry-After` header in milliseconds (seconds or an HTTP date), as the service said it; null
 * when absent or unreadable. The dispatcher gives an alert up rather than retry it early.
 */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(at - now, 0);
}

/** The outcome for an answer every platform treats alike: 429 and 5xx are worth another try. */
export function retryable(res: Response): SendOutcome | null {
  if (res.status === 429 || res.status >= 500) {
    return {
      kind: "retry",
      reason: `status ${res.status}`,
      retryAfterMs: retryAfterMs(res.headers.get("retry-after")),
    };
  }
  return null;
}

/** A thrown fetch (timeout, refused, reset) as an outcome: the network is worth another try. */
export function networkOutcome(err: unknown): SendOutcome {
  const name = err instanceof Error ? err.name : "Error";
  return {
    kind: "retry",
    reason: name === "TimeoutError" ? "timeout" : "network",
    retryAfterMs: null,
  };
}

/** base64url of bytes or of a string's UTF-8, as JOSE writes it. */
export function b64url(input: Uint8Array | string): string {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The DER body of a PKCS#8 PEM, for Web Crypto's importKey("pkcs8"). */
export function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  const b64 = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A signed JWT (compact form) from a header, claims and a Web Crypto key. */
export async function signJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: CryptoKey,
  algorithm: AlgorithmIdentifier | EcdsaParams,
): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // Web Crypto's ECDSA signature is already the raw r||s JOSE wants (not DER).
  const sig = await crypto.subtle.sign(algorithm, key, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}
