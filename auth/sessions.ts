/**
 * Dev-mode device sessions: each login makes a session with a random bearer token, kept in the
 * store only as its SHA-256 hash, so a leaked database does not leak working credentials.
 */
import { hashToken } from "../store/common.ts";
import type { Session, SessionStore } from "../store/store.ts";

/** The session cookie's name (HttpOnly, SameSite=Lax; Secure behind https). */
export const SESSION_COOKIE = "blotter_session";

/** A readable device label from a User-Agent, e.g. "Chrome on macOS". */
export function deviceLabel(userAgent: string | undefined | null): string {
  const ua = userAgent ?? "";
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
    ? "Firefox"
    : /Chrome\//.test(ua)
    ? "Chrome"
    : /Safari\//.test(ua)
    ? "Safari"
    : ua
    ? ua.split(/[\s/]/)[0].slice(0, 40) || "Unknown client"
    : "Unknown client";
  const os = /iPhone|iPad/.test(ua)
    ? "iOS"
    : /Android/.test(ua)
    ? "Android"
    : /Mac OS X/.test(ua)
    ? "macOS"
    : /Windows/.test(ua)
    ? "Windows"
    : /Linux/.test(ua)
    ? "Linux"
    : null;
  return os ? `${browser} on ${os}` : browser;
}

/** Starts a device session for a user; the token is returned once and never stored. */
export async function startSession(
  store: Pick<SessionStore, "createSession">,
  userId: string,
  label: string,
  now: Date,
): Promise<{ token: string; session: Session }> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
  const session = await store.createSession(
    { id: crypto.randomUUID(), user_id: userId, label, created_at: now.toISOString() },
    await hashToken(token),
  );
  return { token, session };
}
