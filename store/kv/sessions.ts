/**
 * Sessions on KV: ["session", id] holds the session, ["token", hash] finds it by bearer token and
 * ["us", user, id] lists a user's devices. A revoke also removes the device's push subscriptions
 * and native push tokens in the same atomic step and tells the in-process listeners, whose
 * streams then end.
 */
import { AppError } from "../../orders/errors.ts";
import type { PushSubscriptionStore, Session, SessionStore } from "../store.ts";
import { deleteSessionDevices } from "./devices.ts";
import { commitOrBusy, type KvContext } from "./keys.ts";

/** The session store on KV; `push` lists the subscriptions a revoke removes. */
export function kvSessions(
  ctx: KvContext,
  push: Pick<PushSubscriptionStore, "listPushSubscriptions">,
): SessionStore {
  const { kv } = ctx;

  async function getSession(sessionId: string): Promise<Session | null> {
    return (await kv.get<Session>(["session", sessionId])).value;
  }

  async function revokeSession(
    userId: string | null,
    sessionId: string,
    now: Date,
  ): Promise<boolean> {
    const entry = await kv.get<Session>(["session", sessionId]);
    const s = entry.value;
    if (!s || s.revoked_at || (userId !== null && s.user_id !== userId)) return false;
    const op = kv.atomic().check(entry)
      .set(["session", sessionId], { ...s, revoked_at: now.toISOString() })
      .delete(["us", s.user_id, sessionId]);
    for (const sub of await push.listPushSubscriptions(s.user_id)) {
      if (sub.session_id === sessionId) {
        op.delete(["push", sub.endpoint]).delete(["up", s.user_id, sub.endpoint]);
      }
    }
    await deleteSessionDevices(kv, op, s.user_id, sessionId);
    if (!(await commitOrBusy(op)).ok) return await revokeSession(userId, sessionId, now);
    ctx.changes.revoked(sessionId, s.user_id);
    return true;
  }

  return {
    getSession,
    revokeSession,

    async createSession(session, tokenHash) {
      const full: Session = { ...session, last_seen_at: session.created_at, revoked_at: null };
      const res = await kv.atomic()
        .check({ key: ["session", session.id], versionstamp: null })
        .check({ key: ["token", tokenHash], versionstamp: null })
        .set(["session", session.id], full)
        .set(["token", tokenHash], session.id)
        .set(["us", session.user_id, session.id], true)
        .commit();
      if (!res.ok) throw new AppError("conflict", "That session already exists");
      return full;
    },

    async sessionByTokenHash(tokenHash) {
      const id = (await kv.get<string>(["token", tokenHash])).value;
      return id ? await getSession(id) : null;
    },

    async ensureSession(session) {
      const existing = await getSession(session.id);
      if (existing) return existing;
      const full: Session = { ...session, last_seen_at: session.created_at, revoked_at: null };
      await kv.atomic()
        .check({ key: ["session", session.id], versionstamp: null })
        .set(["session", session.id], full)
        .set(["us", session.user_id, session.id], true)
        .commit();
      return (await getSession(session.id)) ?? full;
    },

    async touchSession(sessionId, now) {
      const entry = await kv.get<Session>(["session", sessionId]);
      if (!entry.value || entry.value.revoked_at) return;
      // A lost race only loses a last-seen time; no retry needed.
      await kv.atomic().check(entry)
        .set(["session", sessionId], { ...entry.value, last_seen_at: now.toISOString() })
        .commit();
    },

    async revokedAmong(sessionIds) {
      const revoked: string[] = [];
      for (const id of sessionIds) if ((await getSession(id))?.revoked_at) revoked.push(id);
      return revoked;
    },

    async listSessions(userId) {
      const ids: string[] = [];
      for await (const e of kv.list({ prefix: ["us", userId] })) ids.push(e.key[2] as string);
      const sessions: Session[] = [];
      for (const id of ids) {
        const s = await getSession(id);
        if (s && !s.revoked_at) sessions.push(s);
      }
      return sessions.sort((a, b) => b.created_at.localeCompare(a.created_at));
    },
  };
}
