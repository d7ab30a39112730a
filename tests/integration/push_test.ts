/**
 * Web Push against a local fake push service that does what a real one must: checks the VAPID
 * JWT against the server's public key and decrypts the aes128gcm body with the subscription's
 * private key (npm:http_ece), which proves the encryption is real.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createECDH, randomBytes } from "node:crypto";
import ece from "http_ece";
import { api, eventually, INGEST_TOKEN, login, SseClient, startServer } from "../helpers.ts";

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

interface Received {
  headers: Headers;
  payload: Record<string, string>;
  vapidOk: boolean;
}

/** A push service on localhost; `answer` decides the status it replies with. */
function fakePushService(answer: () => number) {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const authSecret = randomBytes(16);
  const received: Received[] = [];
  let vapidKey = "";
  const server = Deno.serve({ port: 0, onListen: () => {} }, async (req) => {
    const body = Buffer.from(await req.arrayBuffer());
    const auth = req.headers.get("authorization") ?? "";
    const m = /^vapid t=([^,]+), k=(.+)$/.exec(auth);
    let vapidOk = false;
    if (m && m[2] === vapidKey) {
      const [h, p, sig] = m[1].split(".");
      const key = await crypto.subtle.importKey(
        "raw",
        Buffer.from(m[2], "base64url"),
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        ["verify"],
      );
      vapidOk = await crypto.subtle.verify(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        Buffer.from(sig, "base64url"),
        new TextEncoder().encode(`${h}.${p}`),
      );
      const claims = JSON.parse(Buffer.from(p, "base64url").toString());
      vapidOk &&= claims.aud === new URL(req.url).origin && claims.exp > Date.now() / 1000;
    }
    const plain = ece.decrypt(body, {
      version: "aes128gcm",
      privateKey: ecdh,
      authSecret: b64url(authSecret),
    });
    received.push({ headers: req.headers, payload: JSON.parse(plain.toString()), vapidOk });
    return new Response(null, { status: answer() });
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    origin,
    received,
    setVapidKey: (k: string) => (vapidKey = k),
    subscription: (path: string) => ({
      endpoint: `${origin}${path}`,
      expirationTime: null,
      keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(authSecret) },
    }),
    stop: () => server.shutdown(),
  };
}

Deno.test({
  name:
    "push: a device without an open stream gets an encrypted, VAPID-signed alert; 410 forgets it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let status = 201;
    const push = fakePushService(() => status);
    const s = await startServer({ PUSH_ENDPOINT_ALLOW: push.origin });
    try {
      const { key } = await (await fetch(`${s.url}/api/v1/push/vapid-public-key`)).json();
      push.setVapidKey(key);
      const phone = await login(s.url, "pia");
      const laptop = await login(s.url, "pia");
      // Not an allowed push service: refused (no SSRF through subscriptions).
      const evil = await api(s.url, phone.token, "POST", "/api/v1/push/subscriptions", {
        ...push.subscription("/x"),
        endpoint: "http://169.254.169.254/latest",
      });
      assert.equal(evil.status, 400);
      const sub = push.subscription("/sub/phone");
      assert.equal(
        (await api(s.url, phone.token, "POST", "/api/v1/push/subscriptions", sub)).status,
        201,
      );
      const laptopSub = push.subscription("/sub/laptop");
      assert.equal(
        (await api(s.url, laptop.token, "POST", "/api/v1/push/subscriptions", laptopSub)).status,
        201,
      );
      // The laptop's page is open: it sees the change live, so only the phone is pushed.
      const live = await SseClient.open(`${s.url}/api/v1/stream`, {
        authorization: `Bearer ${laptop.token}`,
      });

      const { json: order } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "NVDA",
        asset_class: "stock",
        side: "buy",
        qty: "3",
      });
      const at = new Date().toISOString();
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
        { order_id: order.id, exec_id: "p-1", type: "new", at },
        {
          order_id: order.id,
          exec_id: "p-2",
          type: "fill",
          at,
          last_qty: "3",
          last_price: "121.4",
        },
      ]);
      await eventually(() => push.received.length === 1);
      const got = push.received[0];
      assert.equal(got.vapidOk, true);
      assert.equal(got.payload.type, "fill");
      assert.equal(got.payload.order_id, order.id);
      assert.equal(got.payload.symbol, "NVDA");
      assert.match(got.payload.title, /Filled/);
      assert.ok(got.payload.body.length > 0);
      assert.equal(got.headers.get("content-encoding"), "aes128gcm");
      assert.equal(got.headers.get("topic"), order.id.replaceAll("-", ""));
      assert.ok(Number(got.headers.get("ttl")) > 0);
      assert.equal(got.headers.get("urgency"), "high");
      await live.until((c) => c.orders().length === 3);
      live.close();

      // The service says the subscription is gone: it is forgotten, not retried forever.
      status = 410;
      const { json: second } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "ZZZZ",
        asset_class: "stock",
        side: "buy",
        qty: "1",
      });
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: second.id,
        exec_id: "p-3",
        type: "rejected",
        at,
        reason: "unknown symbol",
      });
      await eventually(() => push.received.length >= 3); // phone + laptop (no stream now)
      await eventually(async () => {
        const m = await (await fetch(`${s.url}/metrics`)).text();
        return /blotter_push_total\{outcome="removed"\} 2/.test(m);
      });
      status = 201;
      const before = push.received.length;
      const { json: third } = await api(s.url, phone.token, "POST", "/api/v1/orders", {
        symbol: "ZZZZ",
        asset_class: "stock",
        side: "buy",
        qty: "2",
      });
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: third.id,
        exec_id: "p-4",
        type: "rejected",
        at,
        reason: "unknown symbol",
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(push.received.length, before, "no push to forgotten subscriptions");
    } finally {
      await s.stop();
      await push.stop();
    }
  },
});
