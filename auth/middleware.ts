/**
 * One way in: who is calling (a dev-mode session token, or a JWT in jwt mode), from a bearer
 * header or the session cookie, and the CSRF rule for cookie-borne writes.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { AppError } from "../orders/errors.ts";
import type { AppEnv, AuthDeps, AuthInfo } from "./context.ts";
import { hashToken } from "../store/common.ts";
import { jwtVerifier } from "./jwt.ts";
import { deviceLabel, SESSION_COOKIE } from "./sessions.ts";

/** last_seen_at is written at most this often per session. */
const TOUCH_EVERY_MS = 60_000;

/** The cookie that carries the credential in this auth mode. */
export function cookieName(deps: Pick<AuthDeps, "config">): string {
  return deps.config.auth.mode === "jwt"
    ? deps.config.auth.cookieName ?? SESSION_COOKIE
    : SESSION_COOKIE;
}

/** The token of an `Authorization: Bearer TOKEN` header; null when there is none or it is malformed. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return m ? m[1] : null;
}

/** Who a credential names: the user and live device session, or null (a 401). */
export type TokenAuthenticator = (
  token: string,
  via: AuthInfo["via"],
  userAgent: string | undefined,
) => Promise<AuthInfo | null>;

/** Makes the authenticator for the configured mode: a request's bearer token, else its cookie. */
export function createAuthenticator(
  deps: AuthDeps,
  authenticate: TokenAuthenticator = createTokenAuthenticator(deps),
): (c: Context) => Promise<AuthInfo | null> {
  return (c) => {
    const header = c.req.header("authorization");
    let token: string | undefined, via: AuthInfo["via"];
    if (header) {
      const bearer = bearerToken(header);
      if (bearer === null) return Promise.resolve(null);
      token = bearer;
      via = "bearer";
    } else {
      token = getCookie(c, cookieName(deps));
      via = "cookie";
    }
    if (!token) return Promise.resolve(null);
    return authenticate(token, via, c.req.header("user-agent"));
  };
}

/** Checks one credential however it came (a header, a cookie, the app socket's `hello`). */
export function createTokenAuthenticator(deps: AuthDeps): TokenAuthenticator {
  const verifyJwt = deps.config.auth.mode === "jwt" ? jwtVerifier(deps.config.auth) : null;
  return async (token, via, userAgent) => {
    if (!token || token.length > 4096) return null;
    const now = deps.now();
    let session, expiresAt: number | undefined;
    if (verifyJwt) {
      const claims = await verifyJwt(token);
      if (!claims) return null;
      expiresAt = claims.expiresAt;
      session = await deps.store.ensureSession({
        id: claims.sessionId,
        user_id: claims.userId,
        label: deviceLabel(userAgent),
        created_at: now.toISOString(),
      });
      if (session.user_id !== claims.userId) return null;
    } else {
      session = await deps.store.sessionByTokenHash(await hashToken(token));
    }
    if (!session || session.revoked_at) return null;
    if (now.getTime() - Date.parse(session.last_seen_at) > TOUCH_EVERY_MS) {
      // Not awaited: last-seen is a convenience for the devices page and must not slow or fail
      // the request. A failure is still said (no credential in it: the id names the session,
      // it does not grant it).
      const sessionId = session.id;
      deps.store.touchSession(sessionId, now).catch((err) =>
        deps.log.warn("could not record a session's last use", { session_id: sessionId, err })
      );
    }
    return {
      userId: session.user_id,
      sessionId: session.id,
      via,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    };
  };
}

/**
 * Whether a state-changing request comes from this site. Browsers send Origin on every POST,
 * PATCH and DELETE; a request without Origin or Sec-Fetch-Site is not a browser's, so it cannot
 * be a cross-site forgery.
 */
export function sameOrigin(c: Context, publicOrigin: string | null): boolean {
  const origin = c.req.header("origin");
  if (origin) {
    if (publicOrigin && origin === publicOrigin) return true;
    const url = new URL(c.req.url);
    if (origin === url.origin) return true;
    const host = c.req.header("host");
    const proto = c.req.header("x-forwarded-proto") ?? url.protocol.replace(":", "");
    return host !== undefined && origin === `${proto}://${host}`;
  }
  const site = c.req.header("sec-fetch-site");
  return site === undefined || site === "same-origin" || site === "none";
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Requires a caller: sets `auth`, or answers 401 (JSON) / redirects to /login (pages). Cookie-
 * borne writes from another origin are refused with 403 before anything changes.
 */
export function requireAuth(
  deps: AuthDeps,
  authenticate: (c: Context) => Promise<AuthInfo | null>,
  options: { onMissing: "json" | "redirect" },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const auth = await authenticate(c);
    if (!auth) {
      if (options.onMissing === "redirect") return c.redirect("/login", 303);
      throw new AppError(
        "unauthenticated",
        "Sign in first: send a session cookie or a bearer token",
      );
    }
    if (
      auth.via === "cookie" && !SAFE_METHODS.has(c.req.method) &&
      !sameOrigin(c, deps.config.publicOrigin)
    ) {
      throw new AppError("forbidden", "Cross-site request refused (Origin is not this site)");
    }
    c.set("auth", auth);
    await next();
  };
}
