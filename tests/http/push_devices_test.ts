/**
 * POST/DELETE /api/v1/push/devices as CONTRACT states them, and the devices page saying how each
 * session is alerted. No alert is sent here (see tests/integration/native_push_test.ts).
 */
import assert from "node:assert/strict";
import { api, login, send, startInProcess } from "../helpers.ts";
import { apnsKey, serviceAccount } from "../fakes/credentials.ts";

const account = await serviceAccount(() => "http://127.0.0.1:9/token");
const key = await apnsKey();
const NATIVE = {
  FCM_PROJECT_ID: "blotter-test",
  FCM_SERVICE_ACCOUNT: account.json(),
  APNS_KEY_ID: key.keyId,
  APNS_TEAM_ID: key.teamId,
  APNS_KEY: key.privateKey,
  APNS_TOPIC: key.topic,
};

Deno.test({
  name: "push devices: 201, the same token from the same session 200, bad tokens 400, delete 204",
  async fn() {
    const s = await startInProcess(NATIVE);
    try {
      const me = await login(s, "dev");
      const post = (token: unknown, platform: unknown = "fcm", bearer = me.token) =>
        api(s, bearer, "POST", "/api/v1/push/devices", { platform, token });
      assert.equal((await post("fcm:APA91b-abc_1.2")).status, 201);
      assert.equal((await post("fcm:APA91b-abc_1.2")).status, 200);
      assert.equal((await post("a".repeat(4096), "apns")).status, 201);
      for (const bad of ["a".repeat(4097), "", "has space", "slash/no", "ünicode", 42, null]) {
        const r = await post(bad);
        assert.equal(r.status, 400, `token ${JSON.stringify(bad)?.slice(0, 20)}`);
        assert.equal(r.json.error.code, "invalid_request");
      }
      assert.equal((await post("tok", "gcm")).status, 400);
      // Another session of the same user takes the token: it moves (201, not 200).
      const other = await login(s, "dev");
      assert.equal((await post("fcm:APA91b-abc_1.2", "fcm", other.token)).status, 201);
      assert.equal((await post("fcm:APA91b-abc_1.2", "fcm", other.token)).status, 200);
      const del = await api(s, other.token, "DELETE", "/api/v1/push/devices", {
        token: "fcm:APA91b-abc_1.2",
      });
      assert.equal(del.status, 204);
      assert.equal((await post("fcm:APA91b-abc_1.2", "fcm", other.token)).status, 201);
      // No credentials: 401; not JSON: 415.
      const anon = await send(s, "/api/v1/push/devices", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ platform: "fcm", token: "x" }),
      });
      await anon.body?.cancel();
      assert.equal(anon.status, 401);
      const text = await send(s, "/api/v1/push/devices", {
        method: "POST",
        headers: { authorization: `Bearer ${me.token}`, "content-type": "text/plain" },
        body: "x",
      });
      await text.body?.cancel();
      assert.equal(text.status, 415);
    } finally {
      await s.stop();
    }
  },
});

Deno.test({
  name: "push devices: a platform that is off is refused with 400, saying which",
  async fn() {
    const s = await startInProcess({ FCM_PROJECT_ID: "p", FCM_SERVICE_ACCOUNT: account.json() });
    try {
      const me = await login(s, "dev");
      const apns = await api(s, me.token, "POST", "/api/v1/push/devices", {
        platform: "apns",
        token: "abcd",
      });
      assert.equal(apns.status, 400);
      assert.match(apns.json.error.message, /APNs is not configured/);
      const fcm = await api(s, me.token, "POST", "/api/v1/push/devices", {
        platform: "fcm",
        token: "abcd",
      });
      assert.equal(fcm.status, 201);
    } finally {
      await s.stop();
    }
  },
});
