/**
 * The alert-target cache's Postgres side: whom to alert for a user (browser subscriptions and
 * native push tokens, loaded together and cached together per user, see ../subscription_cache.ts),
 * and the statement tail every change to either ends with, which NOTIFYs `subs` for the users it
 * touched so every instance forgets them.
 */
import type postgres from "postgres";
import type { PushDeviceRecord, PushSubscriptionRecord } from "../store.ts";
import { type AlertTarget, type PgContext, query, type Sql } from "./connect.ts";

/**
 * The tail of a statement that returns each user `users` selects, and NOTIFYs `subs` for them
 * (with the bus, `forgetTargets` tells the other instances after the statement instead).
 */
export function targetsChanged(
  ctx: PgContext,
  sql: Sql,
  users: postgres.PendingQuery<postgres.Row[]>,
) {
  if (ctx.bus) return sql`select u.user_id from (${users}) u`;
  return sql`
    select u.user_id, pg_notify(${ctx.channel},
                                json_build_object('k', 'subs', 'u', u.user_id)::text)
    from (${users}) u`;
}

/**
 * This instance forgets at once what it cached for these users; the others do on the NOTIFY, or
 * with the bus, on the notice sent here.
 */
export function forgetTargets(ctx: PgContext, rows: { user_id: string }[]): void {
  for (const r of rows) {
    ctx.subs.forget(r.user_id);
    ctx.bus?.broadcast({ k: "subs", u: r.user_id });
  }
}

/** Whom to alert for this user: subscriptions and tokens, cached while the feed is up. */
export function alertTargets(ctx: PgContext, userId: string): Promise<AlertTarget[]> {
  return ctx.subs.get(userId, async () => {
    const [subs, devices] = await Promise.all([
      loadPushSubscriptions(ctx, userId),
      loadPushDevices(ctx, userId),
    ]);
    return [...subs, ...devices];
  }, ctx.changes.connected);
}

/** Whether a target is a browser's subscription (else a native token). */
export function isSubscription(t: AlertTarget): t is PushSubscriptionRecord {
  return "endpoint" in t;
}

/** Whether a target is a native app's token. */
export function isDevice(t: AlertTarget): t is PushDeviceRecord {
  return "token" in t;
}

/**
 * The condition that keeps a target (`alias`: its table) to sessions that are not revoked. One
 * that raced its session's sign-out (inserted just after the revoke's delete) is never used: a
 * signed-out device gets no alerts.
 */
function onLiveSession(sql: Sql, alias: "p" | "d") {
  return sql`not exists (
    select 1 from sessions s where s.id = ${sql(alias)}.session_id and s.revoked_at is not null)`;
}

/** This user's subscriptions on sessions that are not revoked, oldest first (uncached). */
async function loadPushSubscriptions(
  ctx: PgContext,
  userId: string,
): Promise<PushSubscriptionRecord[]> {
  const rows = await query(ctx, (sql) =>
    sql<
      {
        endpoint: string;
        user_id: string;
        session_id: string;
        keys: { p256dh: string; auth: string };
        created_at: Date;
      }[]
    >`
        select p.* from push_subscriptions p
        where p.user_id = ${userId} and ${onLiveSession(sql, "p")}
        order by p.created_at`);
  return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
}

type DeviceRow = Omit<PushDeviceRecord, "created_at"> & { created_at: Date };

/** This user's tokens on sessions that are not revoked, oldest first (uncached). */
async function loadPushDevices(
  ctx: PgContext,
  userId: string,
): Promise<PushDeviceRecord[]> {
  const rows = await query(ctx, (sql) =>
    sql<DeviceRow[]>`
      select d.token, d.platform, d.user_id, d.session_id, d.created_at from push_devices d
      where d.user_id = ${userId} and ${onLiveSession(sql, "d")}
      order by d.created_at`);
  return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
}
