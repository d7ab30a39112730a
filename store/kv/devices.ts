/**
 * Native push tokens (FCM, APNs) on KV: ["dev", H] holds a token's record and ["ud", user, H]
 * lists a user's, where H is the token's SHA-256 (a token may be 4,096 characters; a KV key may
 * not). A token is one record, so registering it again from another session or user moves it:
 * the record is version-checked while it moves, so two racing moves end with one owner.
 */
import type { PushDeviceRecord, PushDeviceStore, Session } from "../store.ts";
import { commitOrBusy, MAX_ATTEMPTS, storeBusy } from "./keys.ts";

/** The key part a token is stored under. */
export async function deviceKey(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** This user's device records, however many, in batched reads (getMany takes up to 10 keys). */
async function userDevices(kv: Deno.Kv, userId: string): Promise<PushDeviceRecord[]> {
  const keys: string[] = [];
  for await (const e of kv.list({ prefix: ["ud", userId] })) keys.push(e.key[2] as string);
  const out: PushDeviceRecord[] = [];
  for (let i = 0; i < keys.length; i += 10) {
    const got = await kv.getMany<PushDeviceRecord[]>(keys.slice(i, i + 10).map((k) => ["dev", k]));
    for (const g of got) if (g.value && g.value.user_id === userId) out.push(g.value);
  }
  return out;
}

/**
 * Adds to `op` the deletes of every token of `sessionId` (a revoke removes them in the same
 * atomic step as the session's revocation).
 */
export async function deleteSessionDevices(
  kv: Deno.Kv,
  op: Deno.AtomicOperation,
  userId: string,
  sessionId: string,
): Promise<void> {
  for (const d of await userDevices(kv, userId)) {
    if (d.session_id !== sessionId) continue;
    const key = await deviceKey(d.token);
    op.delete(["dev", key]).delete(["ud", userId, key]);
  }
}

/** The device token store on KV. */
export function kvDevices(kv: Deno.Kv): PushDeviceStore {
  const remove = async (token: string, onlyUser: string | null): Promise<boolean> => {
    const key = await deviceKey(token);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await kv.get<PushDeviceRecord>(["dev", key]);
      const prev = entry.value;
      if (!prev || (onlyUser !== null && prev.user_id !== onlyUser)) return false;
      const res = await commitOrBusy(
        kv.atomic().check(entry).delete(["dev", key]).delete(["ud", prev.user_id, key]),
      );
      if (res.ok) return true;
    }
    throw storeBusy();
  };

  return {
    async addPushDevice(device) {
      const key = await deviceKey(device.token);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const entry = await kv.get<PushDeviceRecord>(["dev", key]);
        const prev = entry.value;
        const same = prev?.user_id === device.user_id && prev.session_id === device.session_id;
        // The same session again keeps when it first registered; a move starts afresh.
        const record = same ? { ...device, created_at: prev!.created_at } : device;
        const op = kv.atomic().check(entry).set(["dev", key], record)
          .set(["ud", device.user_id, key], true);
        if (prev && prev.user_id !== device.user_id) op.delete(["ud", prev.user_id, key]);
        if ((await commitOrBusy(op)).ok) return !prev ? "created" : same ? "unchanged" : "moved";
      }
      throw storeBusy();
    },

    removePushDevice: (userId, token) => remove(token, userId),

    async removePushDeviceByToken(token) {
      await remove(token, null);
    },

    async listPushDevices(userId) {
      const devices = await userDevices(kv, userId);
      const sessions: Deno.KvEntryMaybe<Session>[] = [];
      for (let i = 0; i < devices.length; i += 10) {
        sessions.push(
          ...await kv.getMany<Session[]>(
            devices.slice(i, i + 10).map((d) => ["session", d.session_id]),
          ),
        );
      }
      // One that raced its device's sign-out (added just after the revoke removed the session's
      // tokens) is never used: a signed-out device gets no alerts.
      return devices.filter((_, j) => !sessions[j].value?.revoked_at)
        .sort((a, b) => a.created_at.localeCompare(b.created_at));
    },
  };
}
