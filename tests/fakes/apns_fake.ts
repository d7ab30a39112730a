/**
 * A local APNs: HTTP/2 over TLS (node:http2's secure server, certificate from a test CA) that
 * checks what Apple checks before it accepts a notification — the ES256 provider token against
 * the team's public key (`kid`, `iss`, an `iat` no older than an hour), every required header,
 * the path, the body's shape and its 4 KB limit — and answers as Apple does. A request that
 * fails a check is answered 400/403 with Apple's reason and recorded in `problems`.
 */
import { Buffer } from "node:buffer";
import http2 from "node:http2";
import { verifyJwt } from "./jose.ts";
import { makeTestPki, type TestPki } from "./tls.ts";

/** One notification the fake accepted or refused after its checks. */
export interface ApnsReceived {
  token: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  providerToken: string;
  /** performance.now() when it arrived. */
  at: number;
}

/** How the fake answers an accepted request: status and `reason`; a promise may never settle. */
export type ApnsAnswer = { status: number; reason?: string; headers?: Record<string, string> };

/** The fake's setup: who the team is, which app, what to answer. */
export interface ApnsFakeOptions {
  keyId: string;
  teamId: string;
  topic: string;
  publicKey: CryptoKey;
  answer?: (r: ApnsReceived, n: number) => ApnsAnswer | Promise<ApnsAnswer>;
}

/** A running fake. */
export interface ApnsFake {
  origin: string;
  pki: TestPki;
  /** Requests that passed every check, in arrival order. */
  received: ApnsReceived[];
  /** What failed a check (a test asserts this stays empty). */
  problems: string[];
  /**
   * Treats every provider token issued (`iat`) before this second as expired (403
   * ExpiredProviderToken), as Apple does with tokens older than an hour. 0: none.
   */
  expireIssuedBefore(iatSeconds: number): void;
  /** The `iat` of a provider token the fake has seen. */
  iatOf(providerToken: string): number;
  /** Every distinct provider token seen, in order. */
  providerTokens: string[];
  forToken(token: string): ApnsReceived[];
  stop(): Promise<void>;
}

const REQUIRED = ["apns-topic", "apns-push-type", "apns-priority", "apns-expiration"];

/** Starts the fake on 127.0.0.1 (a free port). */
export async function startApnsFake(options: ApnsFakeOptions): Promise<ApnsFake> {
  const pki = await makeTestPki();
  const received: ApnsReceived[] = [];
  const problems: string[] = [];
  let expiredBefore = 0;
  const providerTokens: string[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();

  const check = async (
    headers: http2.IncomingHttpHeaders,
    raw: Buffer,
  ): Promise<{ fail: ApnsAnswer } | { ok: ApnsReceived }> => {
    const fail = (status: number, reason: string) => {
      problems.push(`${status} ${reason}`);
      return { fail: { status, reason } };
    };
    const path = String(headers[":path"] ?? "");
    const m = /^\/3\/device\/([A-Za-z0-9_:.\-%]+)$/.exec(path);
    if (headers[":method"] !== "POST") return fail(405, "MethodNotAllowed");
    if (!m) return fail(404, "BadPath");
    const token = decodeURIComponent(m[1]);
    const auth = String(headers.authorization ?? "");
    if (!auth.startsWith("bearer ")) return fail(403, "MissingProviderToken");
    const providerToken = auth.slice("bearer ".length);
    if (!providerTokens.includes(providerToken)) providerTokens.push(providerToken);
    const jwt = await verifyJwt(providerToken, options.publicKey, {
      name: "ECDSA",
      hash: "SHA-256",
    });
    if (!jwt) return fail(403, "InvalidProviderToken");
    const { header, claims } = jwt;
    if (header.alg !== "ES256" || header.kid !== options.keyId) {
      return fail(403, "InvalidProviderToken");
    }
    const iat = Number(claims.iat);
    const now = Date.now() / 1000;
    if (claims.iss !== options.teamId || !Number.isInteger(iat) || iat > now + 60) {
      return fail(403, "InvalidProviderToken");
    }
    if (now - iat > 3600 || iat < expiredBefore) {
      return { fail: { status: 403, reason: "ExpiredProviderToken" } };
    }
    for (const name of REQUIRED) {
      if (!headers[name]) return fail(400, `Missing header ${name}`);
    }
    if (headers["apns-topic"] !== options.topic) return fail(400, "DeviceTokenNotForTopic");
    if (headers["apns-push-type"] !== "alert") return fail(400, "InvalidPushType");
    if (headers["apns-priority"] !== "10") return fail(400, "BadPriority");
    if (!/^\d+$/.test(String(headers["apns-expiration"]))) return fail(400, "BadExpirationDate");
    const collapse = String(headers["apns-collapse-id"] ?? "");
    if (!collapse || Buffer.byteLength(collapse) > 64) return fail(400, "BadCollapseId");
    if (raw.length > 4096) return fail(413, "PayloadTooLarge");
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      return fail(400, "PayloadEmpty");
    }
    const aps = body.aps as Record<string, unknown> | undefined;
    const alert = aps?.alert as Record<string, unknown> | undefined;
    const strings = ["order_id", "symbol", "type", "seq"].every((k) => typeof body[k] === "string");
    if (
      typeof alert?.title !== "string" || typeof alert?.body !== "string" ||
      aps?.sound !== "default" || aps?.["thread-id"] !== body.order_id || !strings ||
      collapse !== body.order_id
    ) {
      return fail(400, "BadPayload (shape)");
    }
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) if (!k.startsWith(":")) flat[k] = String(v);
    return { ok: { token, headers: flat, body, providerToken, at: performance.now() } };
  };

  const server = http2.createSecureServer({
    key: pki.keyPem,
    cert: pki.certPem,
    allowHTTP1: false,
  });
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", async () => {
      const result = await check(headers, Buffer.concat(chunks));
      let answer: ApnsAnswer;
      if ("fail" in result) answer = result.fail;
      else {
        received.push(result.ok);
        answer = await (options.answer?.(result.ok, received.length) ?? { status: 200 });
      }
      if (stream.closed || stream.destroyed) return;
      const extra = answer.headers ?? {};
      stream.respond({
        ":status": answer.status,
        "apns-id": crypto.randomUUID(),
        ...(answer.reason ? { "content-type": "application/json" } : {}),
        ...extra,
      });
      stream.end(answer.reason ? JSON.stringify({ reason: answer.reason }) : undefined);
    });
    stream.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    origin: `https://127.0.0.1:${port}`,
    pki,
    received,
    problems,
    expireIssuedBefore: (iat) => (expiredBefore = iat),
    iatOf: (t) => JSON.parse(Buffer.from(t.split(".")[1], "base64url").toString()).iat,
    providerTokens,
    forToken: (token) => received.filter((r) => r.token === token),
    async stop() {
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await pki.remove();
    },
  };
}
