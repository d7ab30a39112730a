/**
 * What the server answers while its store is not open yet (main.ts: Postgres not up when Blotter
 * starts, as in a compose stack coming up or a failover under way). Alive, not ready: `/healthz`
 * is 200 so nothing restarts a process that is only waiting, `/readyz` is 503 with the reason so
 * no load balancer sends it traffic, and anything else is a 503 with Retry-After.
 */
import { Hono } from "hono";
import { AppError, errorBody } from "../orders/errors.ts";

/** How soon a client is asked to come back while the store is not open. */
const RETRY_AFTER_S = 2;

/** The routes served until the store opens; `reason` says what it is waiting for. */
export function waitingRoutes(reason: () => string): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.all("*", (c) => {
    c.header("Retry-After", String(RETRY_AFTER_S));
    return c.json(errorBody(new AppError("unavailable", reason())), 503);
  });
  return app;
}
