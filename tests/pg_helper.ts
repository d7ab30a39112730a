/**
 * Postgres for tests: whether a server is reachable, and a fresh schema per store that is dropped
 * when the store closes. Without a server the Postgres tests are skipped with one line saying how
 * to enable them, unless REQUIRE_POSTGRES=1 (CI), where a missing server fails the run.
 */
import postgres from "postgres";
import { silentLogger } from "../log.ts";
import { openPgStore } from "../store/pg/mod.ts";
import type { Store } from "../store/store.ts";
import { TEST_BUS_URL } from "./nats_helper.ts";

/** The database tests use. */
export const DATABASE_URL = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";

async function reachable(): Promise<boolean> {
  const sql = postgres(DATABASE_URL, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** True when the Postgres tests must be skipped (and says so once). */
export const NO_POSTGRES: boolean = await (async () => {
  if (await reachable()) return false;
  if (Deno.env.get("REQUIRE_POSTGRES") === "1") {
    throw new Error(`REQUIRE_POSTGRES=1 but no Postgres answers at ${DATABASE_URL}`);
  }
  console.warn(
    "Postgres tests skipped: no server at DATABASE_URL; start one (see ../shared/TESTING.md)",
  );
  return true;
})();

/** A fresh schema name for one test. */
export function freshSchema(): string {
  return `test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Opens a Postgres store on a fresh schema; closing it drops the schema. */
export async function openTestPgStore(schema = freshSchema()): Promise<Store> {
  const store = await openPgStore(DATABASE_URL, {
    log: silentLogger,
    schema,
    max: 8,
    eventBusUrl: TEST_BUS_URL,
  });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await dropSchema(schema);
  };
  return store;
}
