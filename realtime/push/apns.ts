/**
 * APNs for the iOS app: HTTP/2 over TLS (Deno's fetch negotiates it by ALPN), authorized by an
 * ES256 provider token made from the team's `.p8` key. Apple wants the token reused for at least
 * 20 minutes and refuses one older than an hour, so it is renewed after 40 minutes, and once when
 * APNs answers 403 ExpiredProviderToken. Hand-written (docs/tech-choices.md says why).
 */
import type { ApnsConfig } from "../../config.ts";
import { type Alert, fitPayload } from "./alert_text.ts";
import { type Renewable, TokenCache } from "./token_cache.ts";
import type { SenderOptions } from "./fcm.ts";
import {
  networkOutcome,
  pemBody,
  requestSignal,
  retryable,
  SEND_TIMEOUT_MS,
  type Sender,
  type SendOutcome,
  signJwt,
} from "./sender.ts";

/** APNs' limit on a notification's payload, in bytes. */
export const APNS_MAX_PAYLOAD_BYTES = 4096;
/** A provider token is reused this long: within Apple's 20–60 minute window, with room. */
export const PROVIDER_TOKEN_REUSE_MS = 40 * 60_000;
/** How long APNs keeps trying an offline device: a fill is stale after a day. */
const EXPIRATION_S = 24 * 3600;
/** The answers (400 reasons) that mean this token will never work for this app. */
const DEAD_TOKEN_REASONS = new Set(["BadDeviceToken", "DeviceTokenNotForTopic"]);

/** The body APNs is sent for one alert, within its payload limit. */
export function apnsPayload(alert: Alert): string {
  return fitPayload(alert, APNS_MAX_PAYLOAD_BYTES, ({ title, body }) =>
    JSON.stringify({
      aps: {
        alert: { title, body },
        sound: "default",
        "thread-id": alert.data.order_id,
      },
      ...alert.data,
    }));
}

/** Provider tokens: one at a time, shared by every concurrent send, remade after 40 minutes. */
class ProviderTokens extends TokenCache {
  readonly #key: Promise<CryptoKey>;

  constructor(private readonly config: ApnsConfig, now: () => number) {
    super(now);
    this.#key = crypto.subtle.importKey(
      "pkcs8",
      pemBody(config.key),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
  }

  protected async make(): Promise<Renewable> {
    const madeAt = this.now();
    const token = await signJwt(
      { alg: "ES256", kid: this.config.keyId },
      { iss: this.config.teamId, iat: Math.floor(madeAt / 1000) },
      await this.#key,
      { name: "ECDSA", hash: "SHA-256" },
    );
    return { token, renewAt: madeAt + PROVIDER_TOKEN_REUSE_MS };
  }
}

/** The `reason` of an APNs error answer, or "" (the body is `{"reason": "..."}`). */
async function reasonOf(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const reason = JSON.parse(text)?.reason;
    return typeof reason === "string" ? reason.slice(0, 64) : "";
  } catch {
    return "";
  }
}

/** The APNs sender. */
export function createApnsSender(
  config: ApnsConfig,
  options: SenderOptions = {},
): Sender<{ token: string }> {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? SEND_TIMEOUT_MS;
  const tokens = new ProviderTokens(config, now);

  const post = async (
    providerToken: string,
    deviceToken: string,
    alert: Alert,
    signal?: AbortSignal,
  ) =>
    await doFetch(`${config.endpoint}/3/device/${encodeURIComponent(deviceToken)}`, {
      method: "POST",
      headers: {
        authorization: `bearer ${providerToken}`,
        "apns-topic": config.topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": String(Math.floor(now() / 1000) + EXPIRATION_S),
        // An offline device shows the order's latest alert, not every step on the way.
        "apns-collapse-id": alert.data.order_id,
        "content-type": "application/json",
      },
      body: apnsPayload(alert),
      redirect: "manual",
      signal: requestSignal(timeoutMs, signal),
    });

  const outcomeOf = async (res: Response): Promise<SendOutcome> => {
    if (res.ok) {
      await res.body?.cancel();
      return { kind: "sent" };
    }
    const reason = await reasonOf(res);
    if (res.status === 410) return { kind: "gone", reason: reason || "Unregistered" };
    if (res.status === 400 && DEAD_TOKEN_REASONS.has(reason)) return { kind: "gone", reason };
    return retryable(res) ?? { kind: "failed", reason: `status ${res.status} ${reason}`.trim() };
  };

  return {
    platform: "apns",
    async send(target, alert, signal) {
      try {
        let providerToken = await tokens.get();
        let res = await post(providerToken, target.token, alert, signal);
        if (res.status === 403) {
          const reason = await reasonOf(res);
          if (reason !== "ExpiredProviderToken") {
            return { kind: "failed", reason: `status 403 ${reason}`.trim() };
          }
          // Once: Apple refuses tokens renewed too often (TooManyProviderTokenUpdates).
          providerToken = await tokens.renew(providerToken);
          res = await post(providerToken, target.token, alert, signal);
        }
        return await outcomeOf(res);
      } catch (err) {
        return networkOutcome(err);
      }
    },
  };
}
