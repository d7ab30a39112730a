/**
 * Ending a device session, the one way every route does it: revoke it in the store, then end its
 * open streams on this instance at once (the change feed tells the other instances, and this one
 * again, harmlessly).
 */
import type { Hub } from "../realtime/hub.ts";
import type { SessionStore } from "../store/store.ts";

/** What ending a device session uses. */
export interface EndSessionDeps {
  store: Pick<SessionStore, "revokeSession">;
  hub: Pick<Hub, "endSession">;
  now: () => Date;
}

/**
 * Revokes `sessionId` (only if it belongs to `userId`; `null`: any user's, for the auth service)
 * and ends its streams here. Answers whether there was such a session to revoke.
 */
export async function endDeviceSession(
  deps: EndSessionDeps,
  userId: string | null,
  sessionId: string,
  reason: "session revoked" | "logged out" = "session revoked",
): Promise<boolean> {
  const revoked = await deps.store.revokeSession(userId, sessionId, deps.now());
  if (revoked) deps.hub.endSession(sessionId, reason);
  return revoked;
}
