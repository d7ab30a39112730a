/**
 * Native push tokens (FCM, APNs) on Postgres: one row per token in `push_devices`. Registering a
 * token another session or user holds moves its row (locked while it moves, so two racing
 * registrations end with one owner); every change NOTIFYs `subs` for the users it touched, in the
 * same statement, so every instance's alert-target cache forgets them (alert_targets.ts).
 */
import type { PushDeviceStore } from "../store.ts";
import { alertTargets, forgetTargets, isDevice, targetsChanged } from "./alert_targets.ts";
import { hashToken } from "../common.ts";
import { type PgContext, query } from "./connect.ts";

/** The device token store on Postgres. */
export function pgDevices(ctx: PgContext): PushDeviceStore {
  const removeWhere = async (token: string, userId: string | null) => {
    const key = await hashToken(token);
    const rows = await query(ctx, (sql) =>
      sql<{ user_id: string }[]>`
        with d as (
          delete from push_devices where token_hash = ${key}
            ${userId === null ? sql`` : sql`and user_id = ${userId}`}
          returning user_id
        )
        ${targetsChanged(ctx, sql, sql`select user_id from d`)}`);
    forgetTargets(ctx, rows);
    return rows.length > 0;
  };

  return {
    async addPushDevice(device) {
      const key = await hashToken(device.token);
      const rows = await query(
        ctx,
        (sql) =>
          sql<{ user_id: string; prev_user: string | null; prev_session: string | null }[]>`
          with prev as (
            -- Locked, so a registration of the same token racing this one is seen, not missed.
            select user_id, session_id from push_devices where token_hash = ${key} for update
          ), up as (
            insert into push_devices (token_hash, token, platform, user_id, session_id, created_at)
            values (${key}, ${device.token}, ${device.platform}, ${device.user_id},
                    ${device.session_id}, ${device.created_at})
            on conflict (token_hash) do update set platform = excluded.platform,
              user_id = excluded.user_id, session_id = excluded.session_id,
              -- The same session again keeps when it first registered; a move starts afresh.
              created_at = case when push_devices.session_id = excluded.session_id
                                 and push_devices.user_id = excluded.user_id
                                then push_devices.created_at else excluded.created_at end
            returning user_id
          ), n as (
            ${targetsChanged(ctx, sql, sql`select user_id from prev union select user_id from up`)}
          )
          select n.user_id, (select user_id from prev) as prev_user,
                 (select session_id from prev) as prev_session
          from n`,
      );
      forgetTargets(ctx, rows);
      const { prev_user, prev_session } = rows[0];
      if (prev_user === null) return "created";
      return prev_user === device.user_id && prev_session === device.session_id
        ? "unchanged"
        : "moved";
    },

    removePushDevice: (userId, token) => removeWhere(token, userId),

    async removePushDeviceByToken(token) {
      await removeWhere(token, null);
    },

    async listPushDevices(userId) {
      // Asked on every fill, with the subscriptions: one cached lookup for both.
      return (await alertTargets(ctx, userId)).filter(isDevice);
    },
  };
}
