/**
 * No secret reaches the log: a real server process at LOG_LEVEL=debug is driven through sign-in,
 * orders, ingest (with a wrong and a right token), push subscription, the auth service's
 * revocation and a database with a password in its URL; then every line it wrote is searched for
 * each secret it was given or handed out.
 */
import assert from "node:assert/strict";
import webpush from "web-push";
import { api, eventually, INGEST_TOKEN, login, spawnServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { NO_NATS } from "../nats_helper.ts";

Deno.test({
  name: "logs: no token, secret, key or password appears in any log line",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    const vapid = webpush.generateVAPIDKeys();
    const service = "service-token-which-must-never-be-logged-0123";
    // Trust auth ignores the password, but the server still holds and must never print it.
    const password = "hunter2-db-password-not-for-logs";
    const url = new URL(DATABASE_URL);
    url.password = password;
    // The bus's credentials too (a NATS server without auth takes and ignores them).
    const busPassword = "nats-password-not-for-logs-9876";
    const bus: Record<string, string> = NO_NATS
      ? {}
      : { EVENT_BUS_URL: `nats://blotter:${busPassword}@127.0.0.1:4222` };
    const server = await spawnServer({
      AUTH_MODE: "dev",
      DATABASE_URL: url.href,
      DATABASE_SCHEMA: schema,
      INGEST_TOKEN,
      AUTH_SERVICE_TOKEN: service,
      VAPID_PUBLIC_KEY: vapid.publicKey,
      VAPID_PRIVATE_KEY: vapid.privateKey,
      PUSH_ENDPOINT_ALLOW: "https://push.example",
      LOG_LEVEL: "debug",
      SIMULATOR: "on",
      SIM_SPEED: "0.05",
      ...bus,
    });
    const base = server.url;

    const secrets: string[] = [INGEST_TOKEN, service, password, busPassword, vapid.privateKey];
    let log = "";
    try {
      const phone = await login(base, "lia");
      const laptop = await login(base, "lia");
      secrets.push(phone.token, laptop.token);
      const { json: order } = await api(base, phone.token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "3",
      });
      const wrong = "wrong-ingest-token-that-is-also-secret-42";
      secrets.push(wrong);
      assert.equal(
        (await api(base, wrong, "POST", "/api/v1/executions", { order_id: order.id })).status,
        401,
      );
      const p256dh =
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
      const auth = "tBHItJI5svbpez7KI4CCXg";
      secrets.push(p256dh, auth);
      assert.equal(
        (await api(base, phone.token, "POST", "/api/v1/push/subscriptions", {
          endpoint: "https://push.example/sub/1",
          keys: { p256dh, auth },
        })).status,
        201,
      );
      // The venue works the order to its end, and its fill's alert is tried (the push service is
      // not there): what that logs is what the greps below read.
      await eventually(async () => {
        const { json } = await api(base, phone.token, "GET", `/api/v1/orders/${order.id}`);
        return ["filled", "canceled", "rejected", "expired"].includes(json.status);
      }, 20_000);
      await eventually(async () => {
        const metrics = await (await fetch(`${base}/metrics`)).text();
        return /blotter_push_total\{[^}]*platform="web"[^}]*\} [1-9]/.test(metrics);
      }, 20_000);
      const revoke = await fetch(`${base}/api/v1/sessions/${laptop.session_id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${service}` },
      });
      await revoke.body?.cancel();
      assert.equal(revoke.status, 204);
      // A request with a bad cookie and a bad bearer, to exercise the auth failure paths.
      const bad = await fetch(`${base}/api/v1/orders`, {
        headers: { cookie: `blotter_session=${phone.token}x`, authorization: "Bearer nope" },
      });
      await bad.body?.cancel();
    } finally {
      log = await server.stop();
      await dropSchema(schema);
    }

    assert.ok(log.split("\n").filter(Boolean).length >= 5, `the server did log:\n${log}`);
    if (!NO_NATS) assert.match(log, /connected to the event bus","servers":"127\.0\.0\.1:4222"/);
    for (const secret of secrets) {
      assert.ok(!log.includes(secret), `a secret appears in the log: ${secret.slice(0, 6)}…`);
    }
  },
});
