/**
 * Blotter, assembled: config → store → hub → push → feed → venue → app → server. Read top to
 * bottom, this is the whole system. Serves only when run directly; tests import `startBlotter`.
 */
import {
  type Config,
  ConfigError,
  healthcheckPort,
  loadConfig,
  processEnv,
  withDevDefaults,
} from "./config.ts";
import { createLogger, type Logger } from "./log.ts";
import { Hub } from "./realtime/hub.ts";
import { startFeed } from "./realtime/feed.ts";
import { Metrics } from "./realtime/metrics.ts";
import { registerProcessMetrics } from "./realtime/process_metrics.ts";
import { createPushDispatcher } from "./realtime/push/dispatcher.ts";
import { createApp } from "./routes/app.ts";
import { serve } from "./serve.ts";
import { openKvStore } from "./store/kv/mod.ts";
import { openPgStore } from "./store/pg/mod.ts";
import type { Store } from "./store/store.ts";
import { startSimulator } from "./venue/simulator.ts";

/** How often old events are pruned (retention is config.eventRetentionMs). */
const PRUNE_EVERY_MS = 15 * 60_000;
/** SIGTERM must end the process within 10 s (CONTRACT); leave room for the exit itself. */
const SHUTDOWN_BUDGET_MS = 8_000;

/** A running Blotter: where it listens and how to stop it. */
export interface RunningBlotter {
  port: number;
  stop(): Promise<void>;
}

/** Opens the store the config asks for: Postgres when DATABASE_URL is set, else Deno KV. */
async function openStore(config: Config, log: Logger): Promise<Store> {
  if (config.databaseUrl) {
    return await openPgStore(config.databaseUrl, {
      log,
      schema: config.databaseSchema,
      writeQueueLimit: config.writeQueueLimit,
    });
  }
  return await openKvStore(config.kvPath, { writeQueueLimit: config.writeQueueLimit, log });
}

/** Blotter without its socket: the app object, and how to stop what runs behind it. */
export interface AssembledBlotter {
  /** The Hono app; `app.fetch` serves it, `app.request()` calls it in-process (tests). */
  app: ReturnType<typeof createApp>;
  /** Which store it opened (for the start-up log line). */
  storeKind: Store["kind"];
  /** Ends every open stream (they reconnect), as shutdown does first. */
  endStreams(): void;
  /** Stops the timers, the venue, the feed, push and the store (after the server has stopped). */
  stop(): Promise<void>;
}

/** Starts every part of Blotter except the HTTP server. */
export async function assembleBlotter(config: Config, log: Logger): Promise<AssembledBlotter> {
  const store = await openStore(config, log);
  const metrics = new Metrics();
  const processMetrics = registerProcessMetrics(metrics);
  const hub = new Hub({
    maxStreamsPerUser: config.maxStreamsPerUser,
    heartbeatMs: config.heartbeatMs,
    metrics,
  });
  const push = await createPushDispatcher({ config, store, hub, metrics, log });
  const feed = startFeed({ store, hub, push, log });
  const venue = config.simulator ? startSimulator({ store, speed: config.simSpeed, log }) : null;
  const prune = setInterval(() => {
    store.pruneEvents(new Date(Date.now() - config.eventRetentionMs))
      .then((n) => n > 0 && log.info("pruned old events", { count: n }))
      .catch((err) => log.error("pruning events failed", { err }));
  }, PRUNE_EVERY_MS);

  const app = createApp({
    config,
    store,
    hub,
    push,
    metrics,
    log,
    feedStatus: feed.status,
    now: () => new Date(),
  });
  return {
    app,
    storeKind: store.kind,
    endStreams: () => hub.closeAll("server shutting down"),
    async stop() {
      clearInterval(prune);
      processMetrics.stop();
      await venue?.stop();
      feed.stop();
      await push.close();
      await store.close();
    },
  };
}

/** Starts every part of Blotter and the HTTP server. */
export async function startBlotter(config: Config, log: Logger): Promise<RunningBlotter> {
  const blotter = await assembleBlotter(config, log);
  const server = await serve(blotter.app, {
    port: config.port,
    host: config.host,
    log,
    server: config.httpServer,
  });
  log.info("Blotter is listening", {
    url: `http://${config.host}:${server.port}`,
    store: blotter.storeKind,
    server: config.httpServer,
    auth: config.auth.mode,
    simulator: config.simulator,
  });
  if (config.auth.mode === "dev") {
    log.warn("AUTH_MODE=dev: anyone can sign in as anyone. Never use it in production.");
  }
  // Accepted (CONTRACT sets no length), but said: a short shared secret can be guessed.
  for (
    const [name, value, min] of [
      ["INGEST_TOKEN", config.ingestToken, 16],
      ["AUTH_JWT_SECRET", config.auth.jwtSecret, 32],
      ["AUTH_SERVICE_TOKEN", config.auth.serviceToken, 16],
    ] as const
  ) {
    if (value !== null && value.length < min) {
      log.warn(`${name} is short: use at least ${min} random characters`);
    }
  }

  let stopping: Promise<void> | null = null;
  const stop = () =>
    stopping ??= (async () => {
      // Ask every stream to reconnect (elsewhere, or here after a restart), then stop serving.
      blotter.endStreams();
      await server.shutdown();
      await blotter.stop();
    })();
  return { port: server.port, stop };
}

/** The container's health check: the image has no shell or curl, so the binary asks itself. */
async function healthcheck(): Promise<never> {
  const port = healthcheckPort(processEnv());
  if (port === null) Deno.exit(1);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
      signal: AbortSignal.timeout(2_000),
    });
    await res.body?.cancel();
    Deno.exit(res.ok ? 0 : 1);
  } catch {
    // Unreachable is simply unhealthy; the exit code is the whole answer.
    Deno.exit(1);
  }
}

if (import.meta.main && Deno.args[0] === "healthcheck") await healthcheck();

if (import.meta.main) {
  let config: Config;
  try {
    const env = processEnv();
    config = loadConfig(Deno.args.includes("--dev") ? withDevDefaults(env) : env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    Deno.exit(1);
  }
  const log = createLogger(config.logLevel);
  const blotter = await startBlotter(config, log);
  const onSignal = () => {
    log.info("shutting down");
    const deadline = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      Deno.exit(1);
    }, SHUTDOWN_BUDGET_MS);
    blotter.stop().then(() => {
      clearTimeout(deadline);
      Deno.exit(0);
    }).catch((err) => {
      log.error("shutdown failed", { err });
      Deno.exit(1);
    });
  };
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
}
