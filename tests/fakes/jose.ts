/**
 * JOSE checks the fakes share: split a compact JWT, verify its signature with Web Crypto, as the
 * real services do. Written apart from the server's signing code on purpose, so a bug there
 * cannot hide by being repeated here.
 */
import { Buffer } from "node:buffer";

/** A JWT's parts, decoded. */
export interface DecodedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

/** Verifies a compact JWT with `key` and `algorithm`; null when malformed or not signed by it. */
export async function verifyJwt(
  jwt: string,
  key: CryptoKey,
  algorithm: AlgorithmIdentifier | EcdsaParams,
): Promise<DecodedJwt | null> {
  const parts = jwt.split(".");
  if (parts.length !== 3) return null;
  const [h, p, s] = parts;
  const ok = await crypto.subtle.verify(
    algorithm,
    key,
    Buffer.from(s, "base64url"),
    new TextEncoder().encode(`${h}.${p}`),
  );
  if (!ok) return null;
  try {
    return {
      header: JSON.parse(Buffer.from(h, "base64url").toString()),
      claims: JSON.parse(Buffer.from(p, "base64url").toString()),
    };
  } catch {
    return null;
  }
}

/** A PKCS#8 PEM of a private key. */
export async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey("pkcs8", key)).toString("base64");
  return `-----BEGIN PRIVATE KEY-----\n${
    der.match(/.{1,64}/g)!.join("\n")
  }\n-----END PRIVATE KEY-----\n`;
}
