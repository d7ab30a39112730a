/**
 * What every router is given (its dependencies) and what the auth middleware puts on the context.
 * Routers are factories: `fooRoutes(deps) => Hono`, mounted together by routes/app.ts.
 */
import type { Config } from "../config.ts";
import type {
  EventLog,
  Health,
  OrderStore,
  PushSubscriptionStore,
  SessionStore,
} from "../store/store.ts";
import type { Hub } from "../realtime/hub.ts";
import type { PushDispatcher } from "../realtime/push.ts";
import type { Metrics } from "../realtime/metrics.ts";
import type { Logger } from "../log.ts";

/** Who is calling: the user, the device session, and how the credential arrived. */
export interface AuthInfo {
  userId: string;
  sessionId: string;
  /** Cookie-borne calls are subject to the CSRF Origin check; bearer calls are not. */
  via: "cookie" | "bearer";
}

/** The Hono environment: variables set by middleware. */
export type AppEnv = { Variables: { auth: AuthInfo } };

/** The process-wide pieces a router may use. */
export interface Deps {
  config: Config;
  /** What routes and the auth middleware ask of the store (feed, push, venue: see main.ts). */
  store: OrderStore & EventLog & SessionStore & PushSubscriptionStore & Health;
  hub: Hub;
  push: PushDispatcher;
  metrics: Metrics;
  /** Structured logger (log.ts); never give it a credential. */
  log: Logger;
  /** Readiness of the change feed, as the feed last reported it. */
  feedStatus: () => { ok: boolean; reason?: string };
  /** The clock; tests may pass their own. */
  now: () => Date;
}
