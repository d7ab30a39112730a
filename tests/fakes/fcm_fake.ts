/**
 * A local Google token endpoint and FCM HTTP v1, in one server on 127.0.0.1, checking what the
 * real ones check: the JWT-bearer grant's assertion is RS256-signed by the service account's key
 * (verified with its public key), with the right `iss`, `scope`, `aud` and an `exp` at most an hour
 * after `iat`; every send carries a bearer this endpoint issued and has not revoked, names the
 * project, and has the exact message shape with string-only `data` within 4 KB. A request that
 * fails a check is answered as Google would and recorded in `problems`.
 */
import { verifyJwt } from "./jose.ts";

/** One send that passed every check. */
export interface FcmReceived {
  token: string;
  message: Record<string, unknown>;
  accessToken: string;
  /** performance.now() when it arrived. */
  at: number;
}

/** How the fake answers an accepted send; a promise may never settle (a hung service). */
export type FcmAnswer = { status: number; body?: unknown; headers?: Record<string, string> };

/** The fake's setup. */
export interface FcmFakeOptions {
  projectId: string;
  clientEmail: string;
  publicKey: CryptoKey;
  /** Lifetime of issued access tokens, seconds (Google: 3599). */
  expiresIn?: number;
  answer?: (r: FcmReceived, n: number) => FcmAnswer | Promise<FcmAnswer>;
}

/** A running fake. */
export interface FcmFake {
  origin: string;
  tokenUri: string;
  received: FcmReceived[];
  problems: string[];
  /** Access tokens issued, in order. */
  issued: string[];
  /** Makes every access token issued so far invalid (the next send gets 401). */
  revokeAccessTokens(): void;
  forToken(token: string): FcmReceived[];
  stop(): Promise<void>;
}

const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

/** A Google-style error answer. */
export function fcmError(status: number, code: string, extra: Record<string, unknown> = {}) {
  return { status, body: { error: { code: status, status: code, message: code, ...extra } } };
}

/** Starts the fake. */
export function startFcmFake(options: FcmFakeOptions): FcmFake {
  const received: FcmReceived[] = [];
  const problems: string[] = [];
  const issued: string[] = [];
  const valid = new Set<string>();
  let tokenUri = "";

  const refuse = (status: number, code: string) => {
    problems.push(`${status} ${code}`);
    return Response.json(fcmError(status, code).body, { status });
  };

  const grant = async (req: Request): Promise<Response> => {
    if (req.headers.get("content-type") !== "application/x-www-form-urlencoded") {
      return refuse(400, "invalid_request (content-type)");
    }
    const form = new URLSearchParams(await req.text());
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return refuse(400, "unsupported_grant_type");
    }
    const jwt = await verifyJwt(form.get("assertion") ?? "", options.publicKey, {
      name: "RSASSA-PKCS1-v1_5",
    });
    if (!jwt || jwt.header.alg !== "RS256") return refuse(400, "invalid_grant (signature)");
    const c = jwt.claims;
    const now = Date.now() / 1000;
    const iat = Number(c.iat), exp = Number(c.exp);
    if (
      c.iss !== options.clientEmail || c.scope !== SCOPE || c.aud !== tokenUri ||
      !(exp > now) || !(exp - iat <= 3600) || iat > now + 60
    ) {
      return refuse(400, "invalid_grant (claims)");
    }
    const accessToken = `ya29.fake-${crypto.randomUUID()}`;
    issued.push(accessToken);
    valid.add(accessToken);
    return Response.json({
      access_token: accessToken,
      expires_in: options.expiresIn ?? 3599,
      token_type: "Bearer",
    });
  };

  const send = async (req: Request, project: string): Promise<Response> => {
    const auth = req.headers.get("authorization") ?? "";
    const bearer = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!valid.has(bearer)) {
      return Response.json(fcmError(401, "UNAUTHENTICATED").body, { status: 401 });
    }
    if (project !== options.projectId) return refuse(403, "PERMISSION_DENIED (project)");
    let body: { message?: Record<string, unknown> };
    try {
      body = await req.json();
    } catch {
      return refuse(400, "INVALID_ARGUMENT (json)");
    }
    const m = body.message ?? {};
    const { token, ...payload } = m;
    const n = m.notification as Record<string, unknown> | undefined;
    const data = m.data as Record<string, unknown> | undefined;
    const android = m.android as Record<string, unknown> | undefined;
    const keys = Object.keys(m).sort().join(",");
    if (
      typeof token !== "string" || keys !== "android,data,notification,token" ||
      typeof n?.title !== "string" || typeof n?.body !== "string" || !data ||
      !Object.values(data).every((v) => typeof v === "string") ||
      !["order_id", "symbol", "type", "seq"].every((k) => k in data) ||
      android?.priority !== "high" || android?.collapse_key !== data.order_id
    ) {
      return refuse(400, "INVALID_ARGUMENT (shape)");
    }
    if (new TextEncoder().encode(JSON.stringify(payload)).length > 4096) {
      return refuse(400, "INVALID_ARGUMENT (too big)");
    }
    const r = { token, message: m, accessToken: bearer, at: performance.now() };
    received.push(r);
    const a = await (options.answer?.(r, received.length) ?? { status: 200 });
    return Response.json(a.body ?? { name: `projects/${project}/messages/${received.length}` }, {
      status: a.status,
      headers: a.headers,
    });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (req.method === "POST" && url.pathname === "/token") return grant(req);
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url.pathname);
    if (req.method === "POST" && m) return send(req, decodeURIComponent(m[1]));
    return refuse(404, "NOT_FOUND (path)");
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  tokenUri = `${origin}/token`;
  return {
    origin,
    tokenUri,
    received,
    problems,
    issued,
    revokeAccessTokens: () => valid.clear(),
    forToken: (token) => received.filter((r) => r.token === token),
    stop: () => server.shutdown(),
  };
}
