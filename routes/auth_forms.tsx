/** Form login and logout for the pages (dev mode), setting and clearing the session cookie. */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { sameOrigin } from "../auth/middleware.ts";
import { deviceLabel, SESSION_COOKIE, startSession } from "../auth/sessions.ts";
import { AppError } from "../orders/errors.ts";
import { LoginPage } from "../views/pages.tsx";
import { clientAddress, Username } from "./api.ts";
import type { SessionStore } from "../store/store.ts";
import type { AppEnv, RouterDeps } from "./context.ts";
import type { Limits } from "./rate_limit.ts";
import { endDeviceSession, type EndSessionDeps } from "./sessions.ts";

/** What login and logout use: the auth settings and the user's sessions. */
type AuthFormDeps =
  & RouterDeps<"config" | "log" | "now", Pick<SessionStore, "createSession">>
  & EndSessionDeps;

/** Whether cookies must be Secure (served over https, directly or behind a proxy). */
export function secureCookies(c: Context, publicOrigin: string | null): boolean {
  return (publicOrigin ?? c.req.url).startsWith("https:") ||
    c.req.header("x-forwarded-proto") === "https";
}

/** The login and logout routes. */
export function authFormRoutes(
  deps: AuthFormDeps,
  limits: Limits,
  requirePageAuth: MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/login", (c) => {
    if (deps.config.auth.mode !== "dev") {
      return c.html(String(<LoginPage error="Sign in through your organisation's login." />));
    }
    return c.html(String(<LoginPage />));
  });

  app.post("/login", async (c) => {
    if (deps.config.auth.mode !== "dev") {
      throw new AppError("not_found", "Form login exists only in AUTH_MODE=dev");
    }
    // Login CSRF: a forged login would sign the victim in as the attacker.
    if (!sameOrigin(c, deps.config.publicOrigin)) {
      throw new AppError("forbidden", "Cross-site request refused (Origin is not this site)");
    }
    limits.logins.take(clientAddress(c));
    const form = await c.req.parseBody();
    const parsed = Username.safeParse(form.username);
    if (!parsed.success) {
      return c.html(String(<LoginPage error={parsed.error.issues[0].message} />), 400);
    }
    const { token, session } = await startSession(
      deps.store,
      parsed.data,
      deviceLabel(c.req.header("user-agent")),
      deps.now(),
    );
    setCookie(c, SESSION_COOKIE, token, {
      httpOnly: true,
      sameSite: "Lax",
      secure: secureCookies(c, deps.config.publicOrigin),
      path: "/",
      maxAge: 30 * 24 * 3600,
    });
    deps.log.info("session started", { user_id: session.user_id, session_id: session.id });
    return c.redirect("/orders", 303);
  });

  app.post("/logout", requirePageAuth, async (c) => {
    const { userId, sessionId } = c.get("auth");
    await endDeviceSession(deps, userId, sessionId, "logged out");
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.redirect("/login", 303);
  });
  return app;
}
