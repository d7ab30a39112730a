/**
 * Every setting, read from the environment once, validated with zod, every bad one reported at
 * once by name, returned frozen. Nothing else in the app reads `Deno.env`.
 */
import { z } from "zod";
import {
  type ApnsConfig,
  apnsSettings,
  type FcmConfig,
  fcmSettings,
  NATIVE_ENV_NAMES,
  type ReadFile,
} from "./config_native.ts";

export type { ApnsConfig, FcmConfig } from "./config_native.ts";

const onOff = z.enum(["on", "off"]);
const positiveInt = z.coerce.number().int().positive();

const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  HOST: z.string().min(1).default("127.0.0.1"),
  HTTP_SERVER: z.enum(["deno", "node"]).default("deno"),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL").optional(),
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lower-case identifier")
    .default("public"),
  KV_PATH: z.string().min(1).default("./data/blotter.kv"),
  AUTH_MODE: z.enum(["dev", "jwt"]).optional(),
  // Short secrets are allowed (CONTRACT sets no length) but warned about at start (main.ts).
  AUTH_JWT_SECRET: z.string().min(1).optional(),
  AUTH_JWT_PUBLIC_KEY: z.string().min(1).optional(),
  AUTH_JWKS_URL: z.url().optional(),
  AUTH_JWT_ISSUER: z.string().min(1).optional(),
  AUTH_JWT_AUDIENCE: z.string().min(1).optional(),
  AUTH_JWT_COOKIE: z.string().regex(/^[A-Za-z0-9_\-]+$/).optional(),
  AUTH_SERVICE_TOKEN: z.string().min(1).optional(),
  INGEST_TOKEN: z.string().min(1).optional(),
  SIMULATOR: onOff.default("off"),
  SIM_SPEED: z.coerce.number().positive().max(1000).default(1),
  VAPID_PUBLIC_KEY: z.string().min(1).optional(),
  VAPID_PRIVATE_KEY: z.string().min(1).optional(),
  VAPID_SUBJECT: z.string().regex(/^(mailto:|https:\/\/)/, "must start with mailto: or https://")
    .default("mailto:ops@blotter.invalid"),
  PUSH_ENDPOINT_ALLOW: z.string().optional(),
  PUSH_ALWAYS: onOff.default("off"),
  HEARTBEAT_MS: positiveInt.default(15000),
  RATE_LIMIT: onOff.default("on"),
  EVENT_RETENTION_HOURS: positiveInt.default(72),
  MAX_STREAMS_PER_USER: positiveInt.default(10),
  MAX_STREAMS: positiveInt.optional(),
  STREAM_QUEUE_LIMIT: positiveInt.default(1000),
  WRITE_QUEUE_LIMIT: positiveInt.default(5000),
  PUBLIC_ORIGIN: z.url().optional(),
  EVENT_BUS_URL: z.string()
    .refine((v) => v.split(",").every(isNatsUrl), "must be nats://HOST:PORT[,…]")
    .optional(),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  // Native push (FCM, APNs): checked as a group in config_native.ts, listed here for ENV_NAMES.
  ...Object.fromEntries(NATIVE_ENV_NAMES.map((n) => [n, z.string().optional()])) as Record<
    typeof NATIVE_ENV_NAMES[number],
    z.ZodOptional<z.ZodString>
  >,
});

/** Whether one server of EVENT_BUS_URL is `nats://[credentials@]host[:port]`, nothing more. */
function isNatsUrl(server: string): boolean {
  try {
    const u = new URL(server.trim());
    return u.protocol === "nats:" && u.hostname !== "" && /^\/?$/.test(u.pathname) && !u.search;
  } catch {
    return false;
  }
}

/** Every environment variable Blotter reads (deployment files are checked against this). */
export const ENV_NAMES: readonly string[] = Object.freeze(Object.keys(Env.shape));

/** The public push services a subscription may point at unless PUSH_ENDPOINT_ALLOW says otherwise. */
export const DEFAULT_PUSH_ORIGINS = [
  "https://fcm.googleapis.com",
  "https://updates.push.services.mozilla.com",
  "https://web.push.apple.com",
  "https://wns2-par02p.notify.windows.com",
] as const;

/** Which HTTP server carries the app (server/): Deno.serve, or node:http with Hono's adapter. */
export type HttpServerKind = "deno" | "node";

/** The validated, typed settings. */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** The HTTP server adapter (server/; the figures behind the default: docs/tech-choices.md). */
  readonly httpServer: HttpServerKind;
  readonly databaseUrl: string | null;
  /** The Postgres schema Blotter's tables live in (tests use one per run). */
  readonly databaseSchema: string;
  readonly kvPath: string;
  readonly auth: {
    readonly mode: "dev" | "jwt";
    readonly jwtSecret: string | null;
    readonly jwtPublicKey: string | null;
    readonly jwksUrl: string | null;
    readonly issuer: string | null;
    readonly audience: string | null;
    readonly cookieName: string | null;
    readonly serviceToken: string | null;
  };
  readonly ingestToken: string | null;
  readonly simulator: boolean;
  readonly simSpeed: number;
  readonly vapid: {
    readonly publicKey: string | null;
    readonly privateKey: string | null;
    readonly subject: string;
  };
  /** Origins (scheme://host[:port]) a push endpoint may be on. */
  readonly pushEndpointAllow: readonly string[];
  /** Push to every device, not only those without an open stream. */
  readonly pushAlways: boolean;
  readonly heartbeatMs: number;
  readonly rateLimit: boolean;
  readonly eventRetentionMs: number;
  readonly maxStreamsPerUser: number;
  /**
   * Open streams and sockets on this instance; past it a new one is answered 503. Null: derived
   * from the open-file limit at start (server/descriptors.ts).
   */
  readonly maxStreams: number | null;
  readonly streamQueueLimit: number;
  /** Reports and order actions waiting to be written at once; past it they are answered 503. */
  readonly writeQueueLimit: number;
  /** NATS servers the instances exchange events over (Postgres only); null: LISTEN/NOTIFY. */
  readonly eventBusUrl: string | null;
  /** This site's own origin, for the CSRF check behind a proxy; null: the request's own. */
  readonly publicOrigin: string | null;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** FCM HTTP v1 for the Android app; null: off. */
  readonly fcm: FcmConfig | null;
  /** APNs for the iOS app; null: off. */
  readonly apns: ApnsConfig | null;
}

/** Raised when settings are bad; `problems` names every one. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `Blotter cannot start; fix these settings:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/**
 * Reads the settings from an environment (a plain record, so tests pass their own). Throws
 * ConfigError listing every problem at once; never returns a half-valid config. `readFile` reads
 * what a `_FILE` setting names (tests pass their own).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  readFile: ReadFile = Deno.readTextFileSync,
): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const parsed = Env.safeParse(present);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join(".")}: ${issue.message}`);
    }
  }
  // The checks across settings read the raw values, so they are reported together with any
  // setting that failed on its own (all at once, as CONTRACT asks).
  const raw = present as Record<string, string>;
  const hasJwtKey = Boolean(raw.AUTH_JWT_SECRET || raw.AUTH_JWT_PUBLIC_KEY || raw.AUTH_JWKS_URL);
  if (!raw.AUTH_MODE && !hasJwtKey) {
    problems.push(
      "AUTH_MODE: not set. Set AUTH_MODE=jwt with AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or " +
        "AUTH_JWKS_URL, or AUTH_MODE=dev for the built-in development login",
    );
  }
  if (raw.AUTH_MODE === "jwt" && !hasJwtKey) {
    problems.push(
      "AUTH_MODE: jwt needs one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL",
    );
  }
  if (raw.EVENT_BUS_URL && !raw.DATABASE_URL) {
    problems.push(
      "EVENT_BUS_URL: needs DATABASE_URL (the bus joins instances sharing one Postgres; the KV " +
        "store is one instance)",
    );
  }
  if (Boolean(raw.VAPID_PUBLIC_KEY) !== Boolean(raw.VAPID_PRIVATE_KEY)) {
    problems.push("VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY: give both or neither");
  }
  const pushOrigins = raw.PUSH_ENDPOINT_ALLOW === undefined
    ? undefined
    : raw.PUSH_ENDPOINT_ALLOW.split(",").map((o) => o.trim().replace(/\/$/, "")).filter(Boolean);
  for (const origin of pushOrigins ?? []) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`PUSH_ENDPOINT_ALLOW: "${origin}" is not an origin like https://host[:port]`);
    }
  }
  const fcm = fcmSettings(raw, readFile, problems);
  const apns = apnsSettings(raw, readFile, problems);
  const e = parsed.success ? parsed.data : null;
  if (problems.length > 0 || !e) throw new ConfigError(problems);

  const mode = e.AUTH_MODE ?? "jwt";
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    httpServer: e.HTTP_SERVER,
    databaseUrl: e.DATABASE_URL ?? null,
    databaseSchema: e.DATABASE_SCHEMA,
    kvPath: e.KV_PATH,
    auth: Object.freeze({
      mode,
      jwtSecret: e.AUTH_JWT_SECRET ?? null,
      jwtPublicKey: e.AUTH_JWT_PUBLIC_KEY ?? null,
      jwksUrl: e.AUTH_JWKS_URL ?? null,
      issuer: e.AUTH_JWT_ISSUER ?? null,
      audience: e.AUTH_JWT_AUDIENCE ?? null,
      cookieName: e.AUTH_JWT_COOKIE ?? null,
      serviceToken: e.AUTH_SERVICE_TOKEN ?? null,
    }),
    ingestToken: e.INGEST_TOKEN ?? null,
    simulator: e.SIMULATOR === "on",
    simSpeed: e.SIM_SPEED,
    vapid: Object.freeze({
      publicKey: e.VAPID_PUBLIC_KEY ?? null,
      privateKey: e.VAPID_PRIVATE_KEY ?? null,
      subject: e.VAPID_SUBJECT,
    }),
    pushEndpointAllow: Object.freeze(pushOrigins ?? [...DEFAULT_PUSH_ORIGINS]),
    pushAlways: e.PUSH_ALWAYS === "on",
    heartbeatMs: e.HEARTBEAT_MS,
    rateLimit: e.RATE_LIMIT === "on",
    eventRetentionMs: e.EVENT_RETENTION_HOURS * 3_600_000,
    maxStreamsPerUser: e.MAX_STREAMS_PER_USER,
    maxStreams: e.MAX_STREAMS ?? null,
    streamQueueLimit: e.STREAM_QUEUE_LIMIT,
    writeQueueLimit: e.WRITE_QUEUE_LIMIT,
    eventBusUrl: e.EVENT_BUS_URL ?? null,
    publicOrigin: e.PUBLIC_ORIGIN ?? null,
    logLevel: e.LOG_LEVEL,
    fcm,
    apns,
  });
}

/**
 * `deno task dev` (main.ts --dev): the development defaults CONTRACT.md gives, AUTH_MODE=dev and
 * SIMULATOR=on, each only where the environment does not say otherwise.
 */
export function withDevDefaults(env: Record<string, string>): Record<string, string> {
  return { AUTH_MODE: "dev", SIMULATOR: "on", ...env };
}

/** The process's environment. Read here and nowhere else, so config.ts is the one reader. */
export function processEnv(): Record<string, string> {
  return Deno.env.toObject();
}

/**
 * The port the container's health check asks: PORT read as the server reads it. Only PORT, so the
 * check does not depend on any other setting; null when PORT is not a valid port.
 */
export function healthcheckPort(env: Record<string, string | undefined>): number | null {
  const parsed = Env.shape.PORT.safeParse(env.PORT || undefined);
  return parsed.success ? parsed.data : null;
}
