/**
 * JWT mode: tokens issued by the existing auth service, verified with a shared secret (HS256), a
 * public key (RS256/ES256, PEM) or a JWKS URL. `sub` is the user, `sid` the device session.
 */
import { decodeHeader, verify, verifyWithJwks } from "hono/utils/jwt/jwt";
import type { Config } from "../config.ts";

/** The claims Blotter uses from a verified token. */
export interface VerifiedToken {
  userId: string;
  sessionId: string;
  /** When the token expires (`exp`, in ms since the epoch); undefined when it has no `exp`. */
  expiresAt?: number;
}

/** How long fetched JWKS keys are reused before fetching again. */
const JWKS_TTL_MS = 10 * 60_000;
/** A token naming a key we do not have refetches the set, at most this often (rotation). */
const JWKS_REFRESH_MIN_MS = 30_000;

/** Builds a verifier for the configured key; returns null for a token that does not verify. */
export function jwtVerifier(
  auth: Config["auth"],
  options: { jwksRefreshMinMs?: number } = {},
): (token: string) => Promise<VerifiedToken | null> {
  const refreshMinMs = options.jwksRefreshMinMs ?? JWKS_REFRESH_MIN_MS;
  const checks = {
    ...(auth.issuer ? { iss: auth.issuer } : {}),
    ...(auth.audience ? { aud: auth.audience } : {}),
  };
  let jwks: { keys: unknown[]; at: number } | null = null;
  let publicKey: Promise<CryptoKey> | null = null;

  const verifyRaw = async (token: string) => {
    if (auth.jwtSecret) return await verify(token, auth.jwtSecret, { alg: "HS256", ...checks });
    if (auth.jwtPublicKey) {
      const alg = auth.jwtPublicKey.includes("BEGIN PUBLIC KEY") && /^eyJ/.test(token)
        ? headerAlg(token)
        : "RS256";
      publicKey ??= importPem(auth.jwtPublicKey, alg);
      return await verify(token, await publicKey, { alg, ...checks });
    }
    // A token signed with a key we have not seen (the auth service rotated its keys) refetches
    // the set at once, but not more often than JWKS_REFRESH_MIN_MS, so forged kids cannot make
    // us hammer the auth service.
    const kid = (decodeHeader(token) as { kid?: unknown }).kid;
    const unknownKid = jwks !== null &&
      !jwks.keys.some((k) => (k as { kid?: unknown }).kid === kid);
    if (
      !jwks || Date.now() - jwks.at > JWKS_TTL_MS ||
      (unknownKid && Date.now() - jwks.at >= refreshMinMs)
    ) {
      const res = await fetch(auth.jwksUrl!, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`JWKS fetch failed: ${res.status}`);
      jwks = { keys: (await res.json()).keys ?? [], at: Date.now() };
    }
    return await verifyWithJwks(token, {
      // deno-lint-ignore no-explicit-any
      keys: jwks.keys as any,
      verification: checks,
      allowedAlgorithms: ["RS256", "ES256", "PS256", "EdDSA"],
    });
  };

  return async (token) => {
    try {
      const payload = await verifyRaw(token);
      // exp is honoured when present (the library checks it); CONTRACT asks only for sub and sid,
      // so a token without one is accepted and lasts until its session (sid) is revoked.
      const sub = payload.sub, sid = payload.sid;
      if (typeof sub !== "string" || !sub || typeof sid !== "string" || !sid) return null;
      const exp = typeof payload.exp === "number" ? payload.exp * 1000 : undefined;
      return { userId: sub, sessionId: sid, ...(exp !== undefined ? { expiresAt: exp } : {}) };
    } catch {
      // A token that fails verification (bad signature, expired, malformed) is no credential:
      // the caller answers 401. Nothing is logged: the reason is the caller's to fix, and a log
      // line per forged token would be the attacker's to fill (and must never carry the token).
      return null;
    }
  };
}

function headerAlg(token: string): "RS256" | "ES256" {
  try {
    const header = JSON.parse(atob(token.split(".")[0].replaceAll("-", "+").replaceAll("_", "/")));
    return header.alg === "ES256" ? "ES256" : "RS256";
  } catch {
    // An unreadable header cannot verify anyway; RS256 lets the verifier refuse it (401).
    return "RS256";
  }
}

async function importPem(pem: string, alg: "RS256" | "ES256"): Promise<CryptoKey> {
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );
  const algorithm = alg === "ES256"
    ? { name: "ECDSA", namedCurve: "P-256" }
    : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  return await crypto.subtle.importKey("spki", der, algorithm, false, ["verify"]);
}
