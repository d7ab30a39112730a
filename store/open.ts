/**
 * Opening the store the config asks for — Postgres when DATABASE_URL is set, else Deno KV — and
 * waiting for a Postgres that is not up yet (a compose stack coming up, a failover under way)
 * rather than failing the start.
 */
import type { Config } from "../config.ts";
import { type Logger, withoutCredentials } from "../log.ts";
import { openKvStore } from "./kv/mod.ts";
import { isNotUpYet, openPgStore } from "./pg/mod.ts";
import type { Store } from "./store.ts";

/** After a failed try to reach the database, the first wait; doubled up to the second. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5_000;
/** How often a wait between tries checks whether the process is stopping. */
const STOP_CHECK_MS = 100;

/** A start that cannot go on (a wrong password, a missing database): said plainly, by setting. */
export class StartError extends Error {
  override name = "StartError";
}

/** Opens the store the config asks for: Postgres when DATABASE_URL is set, else Deno KV. */
export async function openStore(config: Config, log: Logger): Promise<Store> {
  if (config.databaseUrl) {
    return await openPgStore(config.databaseUrl, {
      log,
      schema: config.databaseSchema,
      writeQueueLimit: config.writeQueueLimit,
      eventBusUrl: config.eventBusUrl,
    });
  }
  return await openKvStore(config.kvPath, { writeQueueLimit: config.writeQueueLimit, log });
}

/**
 * Opens the store, waiting for a database that is not up yet: each failed try is told to
 * `waiting` (in plain words, no stack) and tried again with backoff, until it answers or
 * `stopped()` (then null). What will not mend itself — a wrong password, a missing database — is
 * a StartError naming DATABASE_URL; the KV store is never waited for.
 */
export async function openStoreWhenReachable(
  config: Config,
  log: Logger,
  waiting: (reason: string) => void,
  stopped: () => boolean,
): Promise<Store | null> {
  for (let wait = RETRY_FIRST_MS;; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
    try {
      return await openStore(config, log);
    } catch (err) {
      if (!config.databaseUrl) throw err;
      const why = withoutCredentials(err instanceof Error ? err.message : String(err));
      if (!isNotUpYet(err)) throw new StartError(`DATABASE_URL: ${why}`);
      waiting(`waiting for the database at ${databaseWhere(config.databaseUrl)} (${why})`);
    }
    // In slices, so a SIGTERM while waiting is heard within one (main.ts has 8 s to stop).
    for (let slept = 0; slept < wait && !stopped(); slept += STOP_CHECK_MS) {
      await new Promise((r) => setTimeout(r, STOP_CHECK_MS));
    }
    if (stopped()) return null;
  }
}

/**
 * Where DATABASE_URL points, for a log line: hosts and database only, never the credentials.
 * (Several hosts, `h1:5432,h2:5432`, are not one URL to the URL parser: read by hand.)
 */
export function databaseWhere(url: string): string {
  // Up to the LAST "@" before the path: a password may hold an "@" of its own.
  const m = /^postgres(?:ql)?:\/\/(?:[^/?#]*@)?([^/?#@]*)(\/[^?#]*)?/.exec(url);
  return m ? `${m[1] || "localhost"}${m[2] ?? ""}` : "the database";
}
