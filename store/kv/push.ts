/**
 * Push subscriptions and alert claims on KV: ["push", endpoint] holds a subscription and
 * ["up", user, endpoint] lists a user's; ["alert", user, seq] is a claim that expires by itself.
 */
import type {
  AlertClaims,
  PushSubscriptionRecord,
  PushSubscriptionStore,
  Session,
} from "../store.ts";

/** How long an alert claim is kept: as long as the events it is about. */
const CLAIM_TTL_MS = 7 * 24 * 3600_000;

/** Push subscriptions and alert claims on KV. */
export function kvPush(kv: Deno.Kv): PushSubscriptionStore & AlertClaims {
  return {
    async addPushSubscription(sub) {
      const prev = (await kv.get<PushSubscriptionRecord>(["push", sub.endpoint])).value;
      const op = kv.atomic();
      if (prev && prev.user_id !== sub.user_id) op.delete(["up", prev.user_id, sub.endpoint]);
      await op.set(["push", sub.endpoint], sub).set(["up", sub.user_id, sub.endpoint], true)
        .commit();
    },

    async removePushSubscription(userId, endpoint) {
      const prev = (await kv.get<PushSubscriptionRecord>(["push", endpoint])).value;
      if (!prev || prev.user_id !== userId) return false;
      await kv.atomic().delete(["push", endpoint]).delete(["up", userId, endpoint]).commit();
      return true;
    },

    async removePushSubscriptionByEndpoint(endpoint) {
      const prev = (await kv.get<PushSubscriptionRecord>(["push", endpoint])).value;
      if (!prev) return;
      await kv.atomic().delete(["push", endpoint]).delete(["up", prev.user_id, endpoint])
        .commit();
    },

    async listPushSubscriptions(userId) {
      // Asked on every fill: batched reads (getMany takes up to 10 keys), not two per
      // subscription.
      const endpoints: string[] = [];
      for await (const e of kv.list({ prefix: ["up", userId] })) {
        endpoints.push(e.key[2] as string);
      }
      const out: PushSubscriptionRecord[] = [];
      for (let i = 0; i < endpoints.length; i += 10) {
        const subs = (await kv.getMany<PushSubscriptionRecord[]>(
          endpoints.slice(i, i + 10).map((e) => ["push", e]),
        )).flatMap((g) => g.value ? [g.value] : []);
        const sessions = await kv.getMany<Session[]>(
          subs.map((s) => ["session", s.session_id]),
        );
        // One that raced its device's sign-out (added just after the revoke removed the device's
        // subscriptions) is never used: a signed-out device gets no alerts.
        out.push(...subs.filter((_, j) => !sessions[j].value?.revoked_at));
      }
      return out;
    },

    async claimAlert(userId, seq, now) {
      // Expires with the events it is about (KV forgets it by itself).
      const key = ["alert", userId, seq];
      const res = await kv.atomic().check({ key, versionstamp: null })
        .set(key, now.toISOString(), { expireIn: CLAIM_TTL_MS }).commit();
      return res.ok;
    },
  };
}
