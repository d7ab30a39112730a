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
import { startFeed, SWEEP_MS } from "./realtime/feed.ts";
import { registerStoreMetrics } from "./realtime/store_metrics.ts";
import { Metrics } from "./realtime/metrics.ts";
import { registerProcessMetrics } from "./realtime/process_metrics.ts";
import { createPushDispatcher } from "./realtime/push/dispatcher.ts";
import { createApp } from "./routes/app.ts";
import {
  openDescriptors,
  openFileLimit,
  streamCapFor,
  streamRoomFor,
} from "./server/descriptors.ts";
import { waitingRoutes } from "./routes/waiting.ts";
import { serve, type Server } from "./server/serve.ts";
import { openStore, openStoreWhenReachable, StartError } from "./store/open.ts";
import type { Store } from "./store/store.ts";
import { startSimulator } from "./venue/simulator.ts";

/** How often old events are pruned (retention is config.eventRetentionMs). */
const PRUNE_EVERY_MS = 15 * 60_000;
/** SIGTERM must end the process within 10 s (CONTRACT); leave room for the exit itself. */
const SHUTDOWN_BUDGET_MS = 8_000;

/** A running Blotter: where it listens and how to stop it. */
export interface RunningBlotter {
  port: number;
  /** Resolves once every push alert handed in so far is sent or given up (tests wait on it). */
  pushSettled(): Promise<void>;
  stop(): Promise<void>;
}

/** Blotter without its socket: the app object, and how to stop what runs behind it. */
export interface AssembledBlotter {
  /** The Hono app; `app.fetch` serves it, `app.request()` calls it in-process (tests). */
  app: ReturnType<typeof createApp>;
  /** Ends every open stream and socket (they reconnect), as shutdown does first. */
  endStreams(): Promise<void>;
  /** Open streams and sockets: descriptors a shed cannot free (server/serve.ts). */
  openStreams(): number;
  /** Resolves once every push alert handed in so far is sent or given up. */
  pushSettled(): Promise<void>;
  /** Stops the timers, the venue, the feed, push and the store (after the server has stopped). */
  stop(): Promise<void>;
}

/** What a caller may hand assembleBlotter instead of having it made (startBlotter does). */
export interface Given {
  /** The store, already open (startBlotter waits for a late database before assembling). */
  store?: Store;
  /** The process's metrics (the server counts its listener's troubles there too). */
  metrics?: Metrics;
  /** MAX_STREAMS as in force: the setting, or derived from the open-file limit. */
  maxStreams?: number;
  /** Why the server is not accepting connections right now, or null (for /readyz). */
  notAccepting?: () => string | null;
  /** Whether the process has descriptors for one more stream (the server's `roomForMore`). */
  roomLeft?: () => boolean;
}

/** Starts every part of Blotter except the HTTP server. */
export async function assembleBlotter(
  config: Config,
  log: Logger,
  given: Given = {},
): Promise<AssembledBlotter> {
  const store = given.store ?? await openStore(config, log);
  const metrics = given.metrics ?? new Metrics();
  const processMetrics = registerProcessMetrics(metrics);
  registerStoreMetrics(metrics, store);
  const hub = new Hub({
    maxStreamsPerUser: config.maxStreamsPerUser,
    maxStreams: given.maxStreams ?? config.maxStreams ?? undefined,
    heartbeatMs: config.heartbeatMs,
    metrics,
    log,
    interest: store.changes,
    roomLeft: given.roomLeft,
  });
  const push = await createPushDispatcher({ config, store, hub, metrics, log });
  const feed = startFeed({
    store,
    hub,
    push,
    log,
    sweepMs: config.eventBusUrl ? SWEEP_MS : undefined,
  });
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
    notAccepting: given.notAccepting ?? (() => null),
    now: () => new Date(),
  });
  return {
    app,
    endStreams: () => hub.closeAll("server shutting down"),
    openStreams: () => hub.streamCount,
    pushSettled: () => push.idle(),
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

/**
 * Starts every part of Blotter and the HTTP server. When the store opens at once (the usual
 * case), the server starts with the whole app; when Postgres is not up yet, the server starts
 * anyway — alive, not ready (routes/waiting.ts) — and the whole app takes over once it answers.
 */
export async function startBlotter(config: Config, log: Logger): Promise<RunningBlotter> {
  const fileLimit = openFileLimit();
  const maxStreams = config.maxStreams ?? streamCapFor(fileLimit);
  let server: Server | null = null;
  let stopping: Promise<void> | null = null;
  let waitingFor: string | null = null;
  let markWaiting!: () => void;
  const waiting = new Promise<"waiting">((r) => (markWaiting = () => r("waiting")));
  const opening = openStoreWhenReachable(config, log, (reason) => {
    if (waitingFor === null) log.warn(reason);
    waitingFor = reason;
    markWaiting();
  }, () => stopping !== null);
  const metrics = new Metrics();
  // The names Prometheus clients give them: a crowd at the door shows here first.
  metrics.gauge("process_open_fds", "Open file descriptors", () => openDescriptors() ?? 0);
  metrics.gauge("process_max_fds", "The open-file limit (RLIMIT_NOFILE)", () => fileLimit);
  const given: Given = {
    metrics,
    maxStreams,
    notAccepting: () => server?.notAccepting ?? null,
    roomLeft: () => server?.roomForMore() ?? true,
  };
  let blotter: AssembledBlotter | null = null;
  const assemble = async (store: Store | null) => {
    if (!store) return;
    if (stopping) return void await store.close(); // opened just as the process was stopping
    blotter = await assembleBlotter(config, log, { ...given, store });
  };
  // The server starts once the first try has settled, or once the database keeps it waiting.
  const first = await Promise.race([opening, waiting]);
  if (first !== "waiting") await assemble(first);
  // Unauthenticated answers say what, not where or why: the host and the driver's words are for
  // the log (above), not for anyone who asks /readyz.
  const waitingApp = waitingRoutes(() =>
    waitingFor === null ? "Blotter is starting" : "waiting for the database"
  );
  // The server asks this on every request, so the app can change under it (waiting → whole).
  const front = {
    fetch: (req: Request, env?: unknown) => (blotter?.app ?? waitingApp).fetch(req, env),
  };
  server = await serve(front, {
    port: config.port,
    host: config.host,
    log,
    server: config.httpServer,
    metrics: given.metrics,
    fileLimit,
    held: () => blotter?.openStreams() ?? 0,
  });
  log.info("Blotter is listening", {
    url: `http://${config.host}:${server.port}`,
    store: config.databaseUrl ? "postgres" : "kv",
    server: config.httpServer,
    auth: config.auth.mode,
    simulator: config.simulator,
    open_file_limit: fileLimit,
    max_streams: maxStreams,
  });
  const assembled = first !== "waiting" ? Promise.resolve() : opening.then(assemble).then(() => {
    if (blotter) log.info("the database answers: Blotter is ready");
  }, (err) => {
    // A setting that will not mend itself (a wrong password once the database is up): said in
    // one line, and the process ends as it would have at start.
    log.error(err instanceof Error ? err.message : String(err));
    Deno.exit(1);
  });
  if (config.auth.mode === "dev") {
    log.warn("AUTH_MODE=dev: anyone can sign in as anyone. Never use it in production.");
  }
  // Not reached on Linux: new streams are refused once descriptors near the limit (serve.ts).
  const room = streamRoomFor(fileLimit);
  if (maxStreams > room) log.warn("MAX_STREAMS is more than the open-file limit leaves", { room });
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

  const running = server;
  const stop = () =>
    stopping ??= (async () => {
      // Ask every stream to reconnect (elsewhere, or here after a restart), then stop serving.
      await blotter?.endStreams();
      await running.shutdown();
      // A start still waiting for the database gives up at its next try.
      await assembled;
      await (blotter as AssembledBlotter | null)?.stop();
    })();
  return {
    port: server.port,
    pushSettled: () => blotter?.pushSettled() ?? Promise.resolve(),
    stop,
  };
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
  let blotter: RunningBlotter;
  try {
    blotter = await startBlotter(config, log);
  } catch (err) {
    // One plain line and a non-zero exit, never a stack trace: a StartError names the setting;
    // anything else (the port taken, the KV file unreadable) says what the system said.
    // (The logger takes any URL's credentials out of the line, DATABASE_URL's included.)
    log.error(err instanceof StartError ? err.message : `Blotter cannot start: ${err}`);
    Deno.exit(1);
  }
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
