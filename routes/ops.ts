/** Operations: liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`). */
import { Hono } from "hono";
import type { Health } from "../store/store.ts";
import type { AppEnv, RouterDeps } from "./context.ts";

/** What the ops routes ask: whether the store, the feed and the listener are well; the metrics. */
type OpsDeps = RouterDeps<
  "feedStatus" | "notAccepting" | "metrics",
  Pick<Health, "kind" | "ping" | "unwritable" | "bus">
>;

/** How long /readyz waits for the store to answer before it says it is not answering. */
const PING_WAIT_MS = 2_000;

/** The ops routes; no credentials needed, nothing user-specific in them. */
export function opsRoutes(deps: OpsDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    // Answered within PING_WAIT_MS whatever the store does: a database with no primary yet (a
    // failover under way) can hold a query until one appears, and a health check that times
    // out tells a load balancer less than a 503 with the reason.
    let bound: ReturnType<typeof setTimeout> | undefined;
    const storeOk = await Promise.race([
      deps.store.ping(),
      new Promise<false>((r) => (bound = setTimeout(r, PING_WAIT_MS, false))),
    ]).finally(() => clearTimeout(bound));
    const unwritable = storeOk ? await deps.store.unwritable() : null;
    const feed = deps.feedStatus();
    const notAccepting = deps.notAccepting();
    const bus = deps.store.bus();
    // With the bus, the bus is the change feed, and its loss alone is no outage (CONTRACT): writes
    // go on and streams poll meanwhile; a load balancer must not empty itself over it.
    const feedOk = feed.ok || (bus !== null && bus.state !== "connected");
    if (storeOk && !unwritable && feedOk && !notAccepting) {
      return c.json({
        status: "ready",
        store: deps.store.kind,
        ...(bus && { bus: bus.state, ...(!feed.ok && feed.reason && { reason: feed.reason }) }),
      });
    }
    const reason = !storeOk
      ? "the store is not answering"
      : unwritable ?? notAccepting ?? feed.reason ?? "the change feed is down";
    return c.json({
      error: { code: "unavailable", message: reason, ...(bus && { details: { bus: bus.state } }) },
    }, 503);
  });
  app.get("/metrics", (c) => {
    c.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(deps.metrics.render());
  });
  return app;
}
