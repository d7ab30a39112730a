/**
 * A Web Push service on localhost that does what a real one must: checks the VAPID JWT against
 * the server's public key and decrypts the aes128gcm body with the subscription's private key
 * (npm:http_ece), which proves the encryption is real. `answer` decides what it replies (and when).
 */
import { Buffer } from "node:buffer";
import { createECDH, randomBytes } from "node:crypto";
import ece from "http_ece";

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

export interface Received {
  headers: Headers;
  payload: Record<string, string>;
  vapidOk: boolean;
  /** performance.now() when the request arrived. */
  at: number;
}

/** How the fake answers: a status, or a status with headers; a promise may never settle. */
export type Answer = number | { status: number; headers?: Record<string, string> };

/** A push service on localhost; `answer` decides what it replies (and when). */
export function fakePushService(answer: (n: number) => Answer | Promise<Answer>) {
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
    received.push({
      headers: req.headers,
      payload: JSON.parse(plain.toString()),
      vapidOk,
      at: performance.now(),
    });
    const a = await answer(received.length);
    return typeof a === "number"
      ? new Response(null, { status: a })
      : new Response(null, { status: a.status, headers: a.headers });
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
