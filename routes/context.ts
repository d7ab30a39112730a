/**
 * What every router is given (its dependencies). Routers are factories: `fooRoutes(deps) => Hono`,
 * mounted together by routes/app.ts. The context the auth middleware fills (AppEnv, AuthInfo) is
 * defined below routes/, in auth/context.ts, and re-exported here for the routers.
 */
import type { Config } from "../config.ts";
import type {
  EventLog,
  Health,
  OrderStore,
  PushDeviceStore,
  PushSubscriptionStore,
  SessionStore,
} from "../store/store.ts";
import type { Hub } from "../realtime/hub.ts";
import type { PushDispatcher } from "../realtime/push/dispatcher.ts";
import type { Metrics } from "../realtime/metrics.ts";
import type { Logger } from "../log.ts";
import type { AuthDeps } from "../auth/context.ts";

export type { AppEnv, AuthInfo } from "../auth/context.ts";

/**
 * A router's dependencies: the process-wide pieces `K` it names from `Deps`, and the store roles
 * `S` it uses (each router says which: none is handed the whole store).
 */
export type RouterDeps<K extends keyof Deps, S = unknown> = Pick<Deps, K> & { store: S };

/** The process-wide pieces a router may use. */
export interface Deps extends AuthDeps {
  config: Config;
  /** Every store role a router may ask for; each router names the ones it uses (RouterDeps). */
  store: OrderStore & EventLog & SessionStore & PushSubscriptionStore & PushDeviceStore & Health;
  hub: Hub;
  push: PushDispatcher;
  metrics: Metrics;
  /** Structured logger (log.ts); never give it a credential. */
  log: Logger;
  /** Readiness of the change feed, as the feed last reported it. */
  feedStatus: () => { ok: boolean; reason?: string };
  /** Why the server is not accepting new connections right now (server/), or null while it is. */
  notAccepting: () => string | null;
  /** The clock; tests may pass their own. */
  now: () => Date;
}
