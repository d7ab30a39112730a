/**
 * The whole HTTP surface, assembled: shared middleware first, then each router. Exported as a
 * factory so tests build the app in-process (`app.request()`) with their own dependencies.
 */
import { Hono } from "hono";
import type { AppEnv, Deps } from "./context.ts";
import { apiRoutes } from "./api.ts";
import { authFormRoutes } from "./auth_forms.ts";
import { installMiddleware } from "./middleware.ts";
import { openApiRoutes } from "./openapi.ts";
import { opsRoutes } from "./ops.ts";
import { pageRoutes } from "./pages.ts";
import { pushRoutes } from "./push.ts";
import { streamRoutes } from "./stream.ts";

/** Builds the Hono app with every route Blotter serves. */
export function createApp(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  installMiddleware(app, deps);
  app.route("/", opsRoutes(deps));
  app.route("/", openApiRoutes());
  app.route("/", pushRoutes(deps));
  app.route("/", streamRoutes(deps));
  app.route("/", apiRoutes(deps));
  app.route("/", authFormRoutes(deps));
  app.route("/", pageRoutes(deps));
  return app;
}
