/** The devices page says how each session receives background alerts (Web Push, FCM, APNs). */
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
  name: "devices page: each session says which background alerts reach it, and how",
  async fn() {
    const s = await startInProcess({ ...NATIVE, PUSH_ENDPOINT_ALLOW: "https://push.example" });
    try {
      const android = await login(s, "pat");
      const iphone = await login(s, "pat");
      const laptop = await login(s, "pat");
      const quiet = await login(s, "pat");
      await api(s, android.token, "POST", "/api/v1/push/devices", {
        platform: "fcm",
        token: "android-token",
      });
      await api(s, iphone.token, "POST", "/api/v1/push/devices", {
        platform: "apns",
        token: "0a1b2c",
      });
      await api(s, laptop.token, "POST", "/api/v1/push/subscriptions", {
        endpoint: "https://push.example/sub/1",
        keys: {
          p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u",
          auth: "tBHI",
        },
      });
      const page = await (await send(s, "/devices", {
        headers: { authorization: `Bearer ${quiet.token}` },
      })).text();
      const row = (id: string) => {
        const start = page.indexOf(`data-session-id="${id}"`);
        assert.ok(start >= 0, `session ${id} listed`);
        return page.slice(start, page.indexOf("</li>", start));
      };
      assert.match(row(android.session_id), /data-alerts="android"[^>]*>· alerts: Android \(FCM\)/);
      assert.match(row(iphone.session_id), /data-alerts="ios"[^>]*>· alerts: iOS \(APNs\)/);
      assert.match(
        row(laptop.session_id),
        /data-alerts="browser"[^>]*>· alerts: browser \(Web Push\)/,
      );
      assert.match(row(quiet.session_id), /data-alerts=""[^>]*>· no background alerts/);
      // Not another user's tokens, and never a token itself.
      assert.ok(!page.includes("android-token") && !page.includes("0a1b2c"));
    } finally {
      await s.stop();
    }
  },
});
