/**
 * jwt mode against real tokens: HS256 with a shared secret, RS256 with a PEM public key, ES256
 * from a JWKS URL served on localhost (with key rotation), the claims that must hold (exp, nbf,
 * iss, aud, sub, sid), the configured cookie, and revocation of a device session by the auth
 * service, which ends that session's stream at once. Plain requests go in-process through
 * `app.request()`; the JWKS endpoint and the revoked stream use real sockets.
 */
import assert from "node:assert/strict";
import { sign } from "hono/utils/jwt/jwt";
import { jwtVerifier } from "../../auth/jwt.ts";
import { loadConfig } from "../../config.ts";
import { send, SseClient, startInProcess, startServer, type Target } from "../helpers.ts";

const SECRET = "a-shared-secret-of-at-least-32-characters!";
const SERVICE = "auth-service-token-0123456789abcdef";
const now = () => Math.floor(Date.now() / 1000);

function t(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `jwt: ${name}`, fn });
}

/** GET /api/v1/orders with a bearer token; the status. */
async function ordersStatus(target: Target, token: string): Promise<number> {
  const res = await send(target, "/api/v1/orders", {
    headers: { authorization: `Bearer ${token}` },
  });
  await res.body?.cancel();
  return res.status;
}

const claims = (extra: Record<string, unknown> = {}) => ({
  sub: "user-42",
  sid: "device-1",
  iss: "https://auth.example",
  aud: "blotter",
  iat: now(),
  exp: now() + 300,
  ...extra,
});

t("HS256: a valid token is let in; every broken claim is a 401", async () => {
  const s = await startInProcess({
    AUTH_MODE: "jwt",
    AUTH_JWT_SECRET: SECRET,
    AUTH_JWT_ISSUER: "https://auth.example",
    AUTH_JWT_AUDIENCE: "blotter",
  });
  try {
    assert.equal(await ordersStatus(s, await sign(claims(), SECRET)), 200);
    // CONTRACT names only sub and sid: a token without exp is let in (exp, when there, holds).
    assert.equal(await ordersStatus(s, await sign(claims({ exp: undefined }), SECRET)), 200);
    const bad: Array<[string, string]> = [
      ["expired", await sign(claims({ exp: now() - 10 }), SECRET)],
      ["not yet valid", await sign(claims({ nbf: now() + 600 }), SECRET)],
      ["other issuer", await sign(claims({ iss: "https://evil.example" }), SECRET)],
      ["other audience", await sign(claims({ aud: "someone-else" }), SECRET)],
      ["no sub", await sign(claims({ sub: undefined }), SECRET)],
      ["no sid", await sign(claims({ sid: undefined }), SECRET)],
      ["wrong secret", await sign(claims(), "another-secret-that-is-also-32-chars-long")],
      ["garbage", "not.a.token"],
    ];
    // alg "none": a forged token with no signature at all.
    const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "");
    bad.push(["alg none", `${b64({ alg: "none", typ: "JWT" })}.${b64(claims())}.`]);
    for (const [why, token] of bad) {
      assert.equal(await ordersStatus(s, token), 401, why);
    }
    // The error answer is JSON and carries nothing of the token.
    const res = await send(s, `/api/v1/orders`, {
      headers: { authorization: `Bearer ${bad[0][1]}` },
    });
    const body = await res.text();
    assert.equal(JSON.parse(body).error.code, "unauthenticated");
    assert.ok(!body.includes(bad[0][1]));
    // Dev sign-in does not exist in jwt mode.
    const dev = await send(s, `/api/v1/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "mallory" }),
    });
    await dev.body?.cancel();
    assert.ok(dev.status === 404 || dev.status === 403 || dev.status === 405, `${dev.status}`);
  } finally {
    await s.stop();
  }
});

t("the token may come in the configured cookie", async () => {
  const s = await startInProcess({
    AUTH_MODE: "jwt",
    AUTH_JWT_SECRET: SECRET,
    AUTH_JWT_COOKIE: "corp_session",
  });
  try {
    const token = await sign(claims({ iss: undefined, aud: undefined }), SECRET);
    const res = await send(s, `/orders`, { headers: { cookie: `corp_session=${token}` } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /user-42/);
  } finally {
    await s.stop();
  }
});

t("RS256 with a PEM public key", async () => {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pem = `-----BEGIN PUBLIC KEY-----\n${
    btoa(String.fromCharCode(...spki)).match(/.{1,64}/g)!.join("\n")
  }\n-----END PUBLIC KEY-----`;
  const s = await startInProcess({ AUTH_MODE: "jwt", AUTH_JWT_PUBLIC_KEY: pem });
  try {
    const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
    const good = await sign(claims({ iss: undefined, aud: undefined }), jwk, "RS256");
    assert.equal(await ordersStatus(s, good), 200);
    // The same claims signed HS256 with the public key as the secret: the classic confusion.
    assert.equal(await ordersStatus(s, await sign(claims(), pem, "HS256")), 401);
  } finally {
    await s.stop();
  }
});

t("ES256 from a JWKS URL; a rotated key is fetched when a token names it", async () => {
  const keys: JsonWebKey[] = [];
  const privates = new Map<string, JsonWebKey>();
  const addKey = async (kid: string) => {
    const pair = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign", "verify"],
    );
    const pub = await crypto.subtle.exportKey("jwk", pair.publicKey);
    keys.push({ ...pub, kid, alg: "ES256", use: "sig" } as JsonWebKey);
    privates.set(kid, await crypto.subtle.exportKey("jwk", pair.privateKey));
  };
  await addKey("k1");
  let fetches = 0;
  const jwksServer = Deno.serve({ port: 0, onListen: () => {} }, () => {
    fetches++;
    return Response.json({ keys });
  });
  const s = await startInProcess({
    AUTH_MODE: "jwt",
    AUTH_JWKS_URL: `http://127.0.0.1:${jwksServer.addr.port}/.well-known/jwks.json`,
  });
  const tokenFor = (kid: string) =>
    sign(claims({ iss: undefined, aud: undefined }), { ...privates.get(kid)!, kid }, "ES256");
  try {
    assert.equal(await ordersStatus(s, await tokenFor("k1")), 200);
    assert.equal(await ordersStatus(s, await tokenFor("k1")), 200);
    assert.equal(fetches, 1, "the key set is cached");
    // The auth service rotates: a token with a new kid. Refetching is rate-limited, so it is
    // refused until the minimum interval has passed, never fetched on every request.
    await addKey("k2");
    assert.equal(await ordersStatus(s, await tokenFor("k2")), 401);
    assert.equal(fetches, 1);
    // An HS256 token is never accepted with a JWKS.
    assert.equal(await ordersStatus(s, await sign(claims(), SECRET)), 401);
    // Once the interval has passed (0 here), the unknown kid refetches the set and verifies.
    const verifier = jwtVerifier(
      loadConfig({
        AUTH_MODE: "jwt",
        AUTH_JWKS_URL: `http://127.0.0.1:${jwksServer.addr.port}/.well-known/jwks.json`,
      }).auth,
      { jwksRefreshMinMs: 0 },
    );
    await addKey("k3");
    const before = fetches;
    const k1 = await verifier(await tokenFor("k1"));
    assert.deepEqual({ ...k1, expiresAt: undefined }, {
      userId: "user-42",
      sessionId: "device-1",
      expiresAt: undefined,
    });
    // The token's exp, in ms: a stream or socket opened with it ends then.
    assert.ok(k1!.expiresAt! > Date.now() + 200_000);
    await addKey("k4");
    const k4 = await verifier(await tokenFor("k4"));
    assert.deepEqual({ ...k4, expiresAt: undefined }, {
      userId: "user-42",
      sessionId: "device-1",
      expiresAt: undefined,
    });
    // The token's exp, in ms: a stream or socket opened with it ends then.
    assert.ok(k4!.expiresAt! > Date.now() + 200_000);
    assert.equal(fetches, before + 2, "one fetch to start, one for the new kid");
  } finally {
    await s.stop();
    await jwksServer.shutdown();
  }
});

t(
  "the auth service revokes a device session: its stream ends, its token stops working",
  async () => {
    const s = await startServer({
      AUTH_MODE: "jwt",
      AUTH_JWT_SECRET: SECRET,
      AUTH_SERVICE_TOKEN: SERVICE,
    });
    try {
      const phone = await sign(claims({ iss: undefined, aud: undefined, sid: "phone" }), SECRET);
      const laptop = await sign(claims({ iss: undefined, aud: undefined, sid: "laptop" }), SECRET);
      const phoneStream = await SseClient.open(`${s.url}/api/v1/stream`, {
        authorization: `Bearer ${phone}`,
      });
      const laptopStream = await SseClient.open(`${s.url}/api/v1/stream`, {
        authorization: `Bearer ${laptop}`,
      });
      assert.equal(phoneStream.status, 200);
      // Only the service token may do this.
      const denied = await send(s, `/api/v1/sessions/phone`, {
        method: "DELETE",
        headers: { authorization: "Bearer not-the-service-token" },
      });
      await denied.body?.cancel();
      assert.equal(denied.status, 401);
      const revoked = await send(s, `/api/v1/sessions/phone`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${SERVICE}` },
      });
      await revoked.body?.cancel();
      assert.equal(revoked.status, 204);
      await phoneStream.ended(1_000);
      assert.equal(await ordersStatus(s, phone), 401, "a revoked sid is refused");
      assert.equal(laptopStream.closed, false, "the other device stays live");
      assert.equal(await ordersStatus(s, laptop), 200);
      laptopStream.close();
    } finally {
      await s.stop();
    }
  },
);
