/**
 * FCM HTTP v1 for the Android app. The access token comes from the OAuth 2.0 JWT-bearer grant
 * (a JWT RS256-signed with the service account's key, posted to its `token_uri`); it is reused
 * until shortly before it expires and renewed once when FCM answers 401. Hand-written on Web
 * Crypto and fetch (docs/tech-choices.md says why not firebase-admin).
 */
import { z } from "zod";
import type { FcmConfig } from "../../config.ts";
import { type Alert, fitPayload } from "./alert_text.ts";
import { type Renewable, TokenCache } from "./token_cache.ts";
import {
  networkOutcome,
  pemBody,
  requestSignal,
  retryable,
  retryAfterMs,
  SEND_TIMEOUT_MS,
  type Sender,
  type SendOutcome,
  signJwt,
} from "./sender.ts";

/** The scope FCM's send call needs. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
/** FCM's limit on a message's payload (notification + data + android), in bytes. */
export const FCM_MAX_PAYLOAD_BYTES = 4096;
/** An access token is renewed when less than this is left of it (clocks drift; sends take time). */
const RENEW_BEFORE_MS = 5 * 60_000;
/** The grant's JWT lives at most an hour (Google refuses longer). */
const ASSERTION_LIFETIME_S = 3600;

const TokenAnswer = z.object({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().positive().max(86_400),
});

/** What FCM says in an error answer (only the parts that decide what to do). */
const FcmError = z.object({
  error: z.object({
    status: z.string().optional(),
    message: z.string().optional(),
    details: z.array(
      z.object({
        errorCode: z.string().optional(),
        fieldViolations: z.array(z.object({ field: z.string().optional() })).optional(),
      }).passthrough(),
    ).optional(),
  }),
});

/** The grant could not give a token; `retry` when trying again later may help. */
class GrantError extends Error {
  constructor(
    readonly reason: string,
    readonly retry: boolean,
    readonly retryAfter: number | null,
  ) {
    super(reason);
    this.name = "GrantError";
  }
}

/** Options for tests: another fetch (e.g. with a test CA), another clock. */
export interface SenderOptions {
  fetch?: typeof fetch;
  now?: () => number;
  timeoutMs?: number;
}

/** Access tokens from the JWT-bearer grant: one at a time, shared by every concurrent send. */
class AccessTokens extends TokenCache {
  #key: Promise<CryptoKey>;

  constructor(
    private readonly account: FcmConfig["serviceAccount"],
    private readonly fetch: typeof globalThis.fetch,
    now: () => number,
    private readonly timeoutMs: number,
  ) {
    super(now);
    this.#key = crypto.subtle.importKey(
      "pkcs8",
      pemBody(account.privateKey),
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
  }

  protected async make(): Promise<Renewable> {
    const iat = Math.floor(this.now() / 1000);
    const assertion = await signJwt(
      { alg: "RS256", typ: "JWT" },
      {
        iss: this.account.clientEmail,
        scope: FCM_SCOPE,
        aud: this.account.tokenUri,
        iat,
        exp: iat + ASSERTION_LIFETIME_S,
      },
      await this.#key,
      { name: "RSASSA-PKCS1-v1_5" },
    );
    let res: Response;
    try {
      res = await this.fetch(this.account.tokenUri, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
          assertion,
        }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new GrantError(`token endpoint unreachable (${(err as Error).name})`, true, null);
    }
    const text = await res.text();
    if (!res.ok) {
      const retry = res.status === 429 || res.status >= 500;
      // Google's error answers name the problem ("invalid_grant"); never the key or a token.
      const code = /"error"\s*:\s*"([a-z_]{1,40})"/.exec(text)?.[1] ?? "error";
      throw new GrantError(
        `token endpoint answered ${res.status} ${code}`,
        retry,
        retryAfterMs(res.headers.get("retry-after")),
      );
    }
    const parsed = TokenAnswer.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new GrantError("token endpoint answered without a token", true, null);
    }
    const lifetime = parsed.data.expires_in * 1000;
    return {
      token: parsed.data.access_token,
      renewAt: this.now() + Math.max(lifetime - RENEW_BEFORE_MS, lifetime / 2),
    };
  }
}

/** The `message` FCM is sent for one alert (without the token), within FCM's payload limit. */
export function fcmMessage(alert: Alert): Record<string, unknown> {
  return JSON.parse(fitPayload(alert, FCM_MAX_PAYLOAD_BYTES, ({ title, body }) =>
    JSON.stringify({
      notification: { title, body },
      data: alert.data,
      android: { priority: "high", collapse_key: alert.data.order_id },
    })));
}

/** What an FCM answer means for the token (CONTRACT: 404/UNREGISTERED/INVALID_ARGUMENT token). */
async function outcomeOf(res: Response): Promise<SendOutcome> {
  if (res.ok) {
    await res.body?.cancel();
    return { kind: "sent" };
  }
  const text = await res.text();
  let parsed: z.infer<typeof FcmError> | null = null;
  try {
    const r = FcmError.safeParse(JSON.parse(text));
    parsed = r.success ? r.data : null;
  } catch {
    // Not JSON (a proxy's page): the status alone decides.
  }
  const err = parsed?.error;
  const codes = [err?.status, ...(err?.details ?? []).map((d) => d.errorCode)];
  if (res.status === 404 || codes.includes("UNREGISTERED")) {
    return { kind: "gone", reason: "unregistered" };
  }
  const namesToken =
    (err?.details ?? []).some((d) => d.fieldViolations?.some((v) => v.field === "message.token")) ||
    /registration token/i.test(err?.message ?? "");
  if (res.status === 400 && codes.includes("INVALID_ARGUMENT") && namesToken) {
    return { kind: "gone", reason: "invalid token" };
  }
  return retryable(res) ??
    { kind: "failed", reason: `status ${res.status} ${err?.status ?? ""}`.trim() };
}

/** The FCM sender. */
export function createFcmSender(
  config: FcmConfig,
  options: SenderOptions = {},
): Sender<{ token: string }> {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? SEND_TIMEOUT_MS;
  const tokens = new AccessTokens(
    config.serviceAccount,
    doFetch,
    options.now ?? Date.now,
    timeoutMs,
  );
  const url = `${config.endpoint}/v1/projects/${
    encodeURIComponent(config.projectId)
  }/messages:send`;

  const post = async (accessToken: string, body: string, signal?: AbortSignal) =>
    await doFetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
      body,
      redirect: "manual",
      signal: requestSignal(timeoutMs, signal),
    });

  return {
    platform: "fcm",
    async send(target, alert, signal) {
      const body = JSON.stringify({ message: { token: target.token, ...fcmMessage(alert) } });
      try {
        let accessToken = await tokens.get();
        let res = await post(accessToken, body, signal);
        if (res.status === 401) {
          // The token was revoked or expired early: a new one, once; a second 401 is final.
          await res.body?.cancel();
          accessToken = await tokens.renew(accessToken);
          res = await post(accessToken, body, signal);
          if (res.status === 401) {
            await res.body?.cancel();
            return { kind: "failed", reason: "access token refused twice" };
          }
        }
        return await outcomeOf(res);
      } catch (err) {
        if (err instanceof GrantError) {
          return err.retry
            ? { kind: "retry", reason: err.reason, retryAfterMs: err.retryAfter }
            : { kind: "failed", reason: err.reason };
        }
        return networkOutcome(err);
      }
    },
  };
}
