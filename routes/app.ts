/**
 * The whole HTTP surface, assembled: shared middleware first, then each router. Exported as a
 * factory so tests build the app in-process (`app.request()`) with their own dependencies.
 */
import { Hono } from "hono";
import { createAuthenticator, createTokenAuthenticator, requireAuth } from "../auth/middleware.ts";
import type { AppEnv, Deps } from "./context.ts";
import { apiRoutes } from "./api.ts";
import { authFormRoutes } from "./auth_forms.tsx";
import { installMiddleware } from "./middleware.ts";
import { openApiRoutes } from "./openapi.ts";
import { opsRoutes } from "./ops.ts";
import { pageRoutes } from "./pages.tsx";
import { pushRoutes } from "./push.ts";
import { createLimits } from "./rate_limit.ts";
import { socketRoutes } from "./socket.ts";
import { streamRoutes } from "./stream.ts";

/** Builds the Hono app with every route Blotter serves. */
export function createApp(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const limits = createLimits(deps.config.rateLimit);
  // One credential check for every route (JWT mode caches the auth service's keys in it).
  const checkToken = createTokenAuthenticator(deps);
  const authenticate = createAuthenticator(deps, checkToken);
  const apiAuth = requireAuth(deps, authenticate, { onMissing: "json" });
  const pageAuth = requireAuth(deps, authenticate, { onMissing: "redirect" });
  installMiddleware(app, deps);
  app.route("/", opsRoutes(deps));
  app.route("/", openApiRoutes());
  app.route("/", pushRoutes(deps, apiAuth));
  app.route("/", streamRoutes(deps, apiAuth));
  app.route("/", socketRoutes(deps, checkToken));
  app.route("/", apiRoutes(deps, limits, apiAuth));
  app.route("/", authFormRoutes(deps, limits, pageAuth));
  app.route("/", pageRoutes(deps, limits, pageAuth));
  return app;
}
