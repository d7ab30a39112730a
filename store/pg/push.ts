/**
 * Push subscriptions and alert claims on Postgres, and the subscription cache's wiring: every
 * change NOTIFYs `subs` for the users it touched, in the same statement, so every instance forgets
 * what it cached for them (see ../subscription_cache.ts); this one forgets at once. The lookup
 * asked on every fill is served from that cache while the change feed is up.
 */
import type postgres from "postgres";
import type { AlertClaims, PushSubscriptionRecord, PushSubscriptionStore } from "../store.ts";
import { type PgContext, query, type Sql } from "./connect.ts";

/** Push subscriptions and alert claims on Postgres. */
export function pgPush(ctx: PgContext): PushSubscriptionStore & AlertClaims {
  /** The tail of a statement that NOTIFYs `subs` for each user `users` selects, and returns them. */
  function subsChanged(sql: Sql, users: postgres.PendingQuery<postgres.Row[]>) {
    return sql`
      select u.user_id, pg_notify(${ctx.channel},
                                  json_build_object('k', 'subs', 'u', u.user_id)::text)
      from (${users}) u`;
  }

  function forgetSubs(rows: { user_id: string }[]): void {
    for (const r of rows) ctx.subs.forget(r.user_id);
  }

  async function loadPushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
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
        where p.user_id = ${userId}
          -- One that raced its device's sign-out (inserted just after the revoke's delete) is
          -- never used: a signed-out device gets no alerts.
          and not exists (
            select 1 from sessions s where s.id = p.session_id and s.revoked_at is not null
          )
        order by p.created_at`);
    return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
  }

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

    listPushSubscriptions(userId) {
      // Asked on every fill: served from the cache while the change feed (which brings word of
      // changes made on other instances) is up.
      return ctx.subs.get(userId, () => loadPushSubscriptions(userId), ctx.changes.connected);
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
