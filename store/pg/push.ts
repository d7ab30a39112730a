/**
 * Push subscriptions and alert claims on Postgres, and the alert-target cache's wiring: every
 * change to a subscription or a native push token (devices.ts) NOTIFYs `subs` for the users it
 * touched, in the same statement, so every instance forgets what it cached for them (see
 * ../subscription_cache.ts); this one forgets at once. The lookup asked on every fill is served
 * from that cache while the change feed is up.
 */
import type postgres from "postgres";
import type { AlertClaims, PushSubscriptionStore } from "../store.ts";
import { alertTargets, forgetTargets, isSubscription, targetsChanged } from "./alert_targets.ts";
import { type PgContext, query, type Sql } from "./connect.ts";

/** Push subscriptions and alert claims on Postgres. */
export function pgPush(ctx: PgContext): PushSubscriptionStore & AlertClaims {
  const subsChanged = (sql: Sql, users: postgres.PendingQuery<postgres.Row[]>) =>
    targetsChanged(ctx, sql, users);
  const forgetSubs = (rows: { user_id: string }[]) => forgetTargets(ctx, rows);

  return {
    async addPushSubscription(sub) {
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string }[]>`
          with prev as (
            -- Locked, so an upsert of the same endpoint racing this one is seen, not missed.
            select user_id from push_subscriptions where endpoint = ${sub.endpoint} for update
          ), up as (
            insert into push_subscriptions (endpoint, user_id, session_id, keys, created_at)
            values (${sub.endpoint}, ${sub.user_id}, ${sub.session_id}, ${sql.json(sub.keys)},
                    ${sub.created_at})
            on conflict (endpoint) do update set user_id = excluded.user_id,
              session_id = excluded.session_id, keys = excluded.keys
            returning user_id
          )
          ${subsChanged(sql, sql`select user_id from prev union select user_id from up`)}`);
      forgetSubs(rows);
    },

    async removePushSubscription(userId, endpoint) {
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string }[]>`
          with d as (
            delete from push_subscriptions where endpoint = ${endpoint} and user_id = ${userId}
            returning user_id
          )
          ${subsChanged(sql, sql`select user_id from d`)}`);
      forgetSubs(rows);
      return rows.length > 0;
    },

    async removePushSubscriptionByEndpoint(endpoint) {
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string }[]>`
          with d as (delete from push_subscriptions where endpoint = ${endpoint} returning user_id)
          ${subsChanged(sql, sql`select user_id from d`)}`);
      forgetSubs(rows);
    },

    async listPushSubscriptions(userId) {
      // Asked on every fill: served from the cache while the change feed (which brings word of
      // changes made on other instances) is up.
      return (await alertTargets(ctx, userId)).filter(isSubscription);
    },

    async claimAlert(userId, seq, now) {
      const result = await query(ctx, (sql) =>
        sql`
          insert into alert_claims (user_id, seq, claimed_at) values (${userId}, ${seq}, ${now})
          on conflict do nothing`);
      return result.count === 1;
    },
  };
}
