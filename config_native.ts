/**
 * The native push settings (FCM and APNs), checked together with every other setting: a platform
 * is on when all of its settings are given; some but not all of them is a start-up problem naming
 * what is missing. Keys are parsed here (synchronously, node:crypto) so a key that is not what
 * the platform needs is refused at start, not at the first fill.
 */
import { createPrivateKey } from "node:crypto";
import { z } from "zod";

/** FCM HTTP v1 settings, present only when FCM is on. */
export interface FcmConfig {
  readonly projectId: string;
  /** The service-account key's parts Blotter uses (the grant's `iss`, its key, its `aud`). */
  readonly serviceAccount: {
    readonly clientEmail: string;
    /** PKCS#8 PEM of an RSA key. */
    readonly privateKey: string;
    readonly tokenUri: string;
  };
  /** Where `v1/projects/{id}/messages:send` lives, without a trailing slash. */
  readonly endpoint: string;
}

/** APNs settings, present only when APNs is on. */
export interface ApnsConfig {
  readonly keyId: string;
  readonly teamId: string;
  /** The `.p8` auth key: PKCS#8 PEM of a P-256 key. */
  readonly key: string;
  /** The app's bundle id (`apns-topic`). */
  readonly topic: string;
  /** Without a trailing slash. */
  readonly endpoint: string;
}

/** Reads a file named by a `_FILE` setting; tests pass their own. */
export type ReadFile = (path: string) => string;

const ServiceAccount = z.object({
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  token_uri: z.url().regex(/^https?:\/\//),
});

const DEFAULT_FCM_ENDPOINT = "https://fcm.googleapis.com";
const DEFAULT_APNS_ENDPOINT = "https://api.push.apple.com";

/** Every native push setting Blotter reads (listed in config.ts's ENV_NAMES). */
export const NATIVE_ENV_NAMES = [
  "FCM_PROJECT_ID",
  "FCM_SERVICE_ACCOUNT",
  "FCM_SERVICE_ACCOUNT_FILE",
  "FCM_ENDPOINT",
  "APNS_KEY_ID",
  "APNS_TEAM_ID",
  "APNS_KEY",
  "APNS_KEY_FILE",
  "APNS_TOPIC",
  "APNS_ENDPOINT",
] as const;

/** One setting given directly or as a path (`NAME` / `NAME_FILE`); null when neither. */
function valueOrFile(
  raw: Record<string, string>,
  name: string,
  readFile: ReadFile,
  problems: string[],
): string | null {
  const direct = raw[name];
  const path = raw[`${name}_FILE`];
  if (direct && path) {
    problems.push(`${name} / ${name}_FILE: give one, not both`);
    return null;
  }
  if (direct) return direct;
  if (!path) return null;
  try {
    return readFile(path);
  } catch (err) {
    // The path is not a secret; what the file holds is, and it is never put in a message.
    problems.push(`${name}_FILE: cannot read ${path} (${(err as Error).name})`);
    return null;
  }
}

/** An endpoint setting: an http(s) origin-like URL, returned without a trailing slash. */
function endpointOf(
  raw: Record<string, string>,
  name: string,
  fallback: string,
  problems: string[],
): string {
  const value = raw[name] ?? fallback;
  if (!/^https?:\/\/[^\s]+$/.test(value) || !URL.canParse(value)) {
    problems.push(`${name}: must be an http(s) URL like ${fallback}`);
  }
  return value.replace(/\/+$/, "");
}

/** Which of a platform's settings are missing, given that at least one is set; [] when all are. */
function missingOf(raw: Record<string, string>, groups: string[][]): string[] {
  const given = (g: string[]) => g.some((name) => raw[name]);
  return groups.filter((g) => !given(g)).map((g) => g.join(" or "));
}

/** The FCM settings: null when none is given. Problems are appended to `problems`. */
export function fcmSettings(
  raw: Record<string, string>,
  readFile: ReadFile,
  problems: string[],
): FcmConfig | null {
  const groups = [["FCM_PROJECT_ID"], ["FCM_SERVICE_ACCOUNT", "FCM_SERVICE_ACCOUNT_FILE"]];
  if (!NATIVE_ENV_NAMES.some((n) => n.startsWith("FCM_") && raw[n])) return null;
  const missing = missingOf(raw, groups);
  if (missing.length > 0) {
    problems.push(`FCM: some settings are given but not ${missing.join(", ")}; give all or none`);
  }
  const before = problems.length;
  const endpoint = endpointOf(raw, "FCM_ENDPOINT", DEFAULT_FCM_ENDPOINT, problems);
  const text = valueOrFile(raw, "FCM_SERVICE_ACCOUNT", readFile, problems);
  let account: z.infer<typeof ServiceAccount> | null = null;
  if (text !== null) {
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      problems.push("FCM_SERVICE_ACCOUNT: is not JSON (a Google service-account key file)");
    }
    const parsed = json === null ? null : ServiceAccount.safeParse(json);
    if (parsed && !parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.join(".")))];
      problems.push(`FCM_SERVICE_ACCOUNT: needs ${fields.join(", ")} (a service-account key)`);
    } else if (parsed?.success) {
      account = parsed.data;
      if (keyType(account.private_key) !== "rsa") {
        problems.push("FCM_SERVICE_ACCOUNT: private_key is not an RSA private key in PEM");
      }
    }
  }
  if (missing.length > 0 || problems.length > before || !account) return null;
  return Object.freeze({
    projectId: raw.FCM_PROJECT_ID,
    serviceAccount: Object.freeze({
      clientEmail: account.client_email,
      privateKey: account.private_key,
      tokenUri: account.token_uri,
    }),
    endpoint,
  });
}

/** The APNs settings: null when none is given. Problems are appended to `problems`. */
export function apnsSettings(
  raw: Record<string, string>,
  readFile: ReadFile,
  problems: string[],
): ApnsConfig | null {
  const groups = [["APNS_KEY_ID"], ["APNS_TEAM_ID"], ["APNS_KEY", "APNS_KEY_FILE"], [
    "APNS_TOPIC",
  ]];
  if (!NATIVE_ENV_NAMES.some((n) => n.startsWith("APNS_") && raw[n])) return null;
  const missing = missingOf(raw, groups);
  if (missing.length > 0) {
    problems.push(`APNs: some settings are given but not ${missing.join(", ")}; give all or none`);
  }
  const before = problems.length;
  const endpoint = endpointOf(raw, "APNS_ENDPOINT", DEFAULT_APNS_ENDPOINT, problems);
  if (!endpoint.startsWith("https://")) {
    problems.push("APNS_ENDPOINT: APNs is reached over HTTPS (HTTP/2 over TLS)");
  }
  for (const name of ["APNS_KEY_ID", "APNS_TEAM_ID"]) {
    if (raw[name] && !/^[A-Z0-9]{1,32}$/.test(raw[name])) {
      problems.push(`${name}: must be the 10-character id Apple shows (letters and digits)`);
    }
  }
  if (raw.APNS_TOPIC && !/^[A-Za-z0-9.\-]+$/.test(raw.APNS_TOPIC)) {
    problems.push("APNS_TOPIC: must be the app's bundle id, e.g. com.example.blotter");
  }
  const key = valueOrFile(raw, "APNS_KEY", readFile, problems);
  if (key !== null && keyType(key) !== "p256") {
    problems.push("APNS_KEY: is not a P-256 private key in PKCS#8 PEM (an APNs .p8 auth key)");
  }
  if (missing.length > 0 || problems.length > before || key === null) return null;
  return Object.freeze({
    keyId: raw.APNS_KEY_ID,
    teamId: raw.APNS_TEAM_ID,
    key,
    topic: raw.APNS_TOPIC,
    endpoint,
  });
}

/** What kind of private key a PEM holds, without ever putting it in an error message. */
function keyType(pem: string): "rsa" | "p256" | "other" {
  if (!/-----BEGIN PRIVATE KEY-----/.test(pem)) return "other";
  try {
    const key = createPrivateKey({ key: pem, format: "pem" });
    if (key.asymmetricKeyType === "rsa") return "rsa";
    if (
      key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1"
    ) return "p256";
    return "other";
  } catch {
    // Unparseable is simply "not the key we need"; the caller names the setting.
    return "other";
  }
}
