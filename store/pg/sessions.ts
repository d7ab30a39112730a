/**
 * Sessions on Postgres: create, look up (by token hash or id), touch, list and revoke. A revoke
 * is one statement that also deletes the device's push subscriptions and NOTIFYs every instance
 * (with the bus, it is told them after the statement), whose streams for that session then end.
 */
import type { Session, SessionStore } from "../store.ts";
import { type PgContext, query } from "./connect.ts";

type SessionRow = {
  id: string;
  user_id: string;
  label: string;
  created_at: Date;
  last_seen_at: Date;
  revoked_at: Date | null;
};

function sessionOf(row: SessionRow): Session {
  return {
    id: row.id,
    user_id: row.user_id,
    label: row.label,
    created_at: row.created_at.toISOString(),
    last_seen_at: row.last_seen_at.toISOString(),
    revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
  };
}

/** The session store on Postgres. */
export function pgSessions(ctx: PgContext): SessionStore {
  async function getSession(sessionId: string): Promise<Session | null> {
    const [row] = await query(
      ctx,
      (sql) => sql<SessionRow[]>`select * from sessions where id = ${sessionId}`,
    );
    return row ? sessionOf(row) : null;
  }

  return {
    getSession,

    async createSession(session, tokenHash) {
      const [row] = await query(ctx, (sql) =>
        sql<SessionRow[]>`
          insert into sessions (id, user_id, token_hash, label, created_at, last_seen_at)
          values (${session.id}, ${session.user_id}, ${tokenHash}, ${session.label},
                  ${session.created_at}, ${session.created_at})
          returning *`);
      return sessionOf(row);
    },

    async sessionByTokenHash(tokenHash) {
      const [row] = await query(
        ctx,
        (sql) => sql<SessionRow[]>`select * from sessions where token_hash = ${tokenHash}`,
      );
      return row ? sessionOf(row) : null;
    },

    async ensureSession(session) {
      await query(ctx, (sql) =>
        sql`
          insert into sessions (id, user_id, label, created_at, last_seen_at)
          values (${session.id}, ${session.user_id}, ${session.label}, ${session.created_at},
                  ${session.created_at})
          on conflict (id) do nothing`);
      return (await getSession(session.id))!;
    },

    async touchSession(sessionId, now) {
      await query(
        ctx,
        (sql) =>
          sql`update sessions set last_seen_at = ${now} where id = ${sessionId} and revoked_at is null`,
      );
    },

    async revokedAmong(sessionIds) {
      if (sessionIds.length === 0) return [];
      const rows = await query(ctx, (sql) =>
        sql<{ id: string }[]>`
          select id from sessions where id = any(${sessionIds}::text[]) and revoked_at is not null`);
      return rows.map((r) => r.id);
    },

    async listSessions(userId) {
      const rows = await query(ctx, (sql) =>
        sql<SessionRow[]>`
          select * from sessions where user_id = ${userId} and revoked_at is null
          order by created_at desc`);
      return rows.map(sessionOf);
    },

    async revokeSession(userId, sessionId, now) {
      // One statement, so atomic: revoke, drop the device's push subscriptions and native push
      // tokens, tell every instance (whose alert-target caches forget this user on `revoke`).
      const rows = await query(ctx, (sql) =>
        sql<{ user_id: string }[]>`
          with r as (
            update sessions set revoked_at = ${now}
            where id = ${sessionId} and revoked_at is null
              ${userId === null ? sql`` : sql`and user_id = ${userId}`}
            returning user_id
          ), d as (
            delete from push_subscriptions where session_id = ${sessionId}
              and exists (select 1 from r)
          ), dd as (
            delete from push_devices where session_id = ${sessionId}
              and exists (select 1 from r)
          )
          select user_id${
          ctx.bus ? sql`` : sql`, pg_notify(${ctx.channel},
            json_build_object('k', 'revoke', 'u', user_id, 's', ${sessionId}::text)::text)`
        }
          from r`);
      for (const r of rows) {
        ctx.subs.forget(r.user_id);
        // With the bus, nobody heard it from Postgres: tell every instance (this one a turn
        // later: its caller ends its streams first, with its reason).
        ctx.bus?.broadcast({ k: "revoke", u: r.user_id, s: sessionId });
      }
      return rows.length > 0;
    },
  };
}
