/**
 * What the auth middleware needs and what it puts on the request context. It lives here, below
 * routes/, so auth/ never imports up the house; routes/context.ts re-exports the context types.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { SessionStore } from "../store/store.ts";

/** Who is calling: the user, the device session, and how the credential arrived. */
export interface AuthInfo {
  userId: string;
  sessionId: string;
  /** Cookie-borne calls are subject to the CSRF Origin check; bearer calls are not. */
  via: "cookie" | "bearer";
  /**
   * When the credential expires (a JWT's `exp`, ms since the epoch): a stream or socket opened
   * with it ends then unless refreshed. Undefined: it lasts until its session is revoked.
   */
  expiresAt?: number;
}

/** The Hono environment: variables set by middleware. */
export type AppEnv = { Variables: { auth: AuthInfo } };

/** The part of the process-wide dependencies the auth middleware uses. */
export interface AuthDeps {
  config: Config;
  store: Pick<SessionStore, "ensureSession" | "sessionByTokenHash" | "touchSession">;
  /** The clock; tests may pass their own. */
  now: () => Date;
  /** Where a failed last-seen write is said (never with a credential). */
  log: Logger;
}
