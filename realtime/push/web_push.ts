/**
 * Web Push for browsers and installed web apps. Requests are built by web-push's
 * `generateRequestDetails` (aes128gcm-encrypted, VAPID-signed; ~2.6 ms of CPU each, which is why
 * the dispatcher runs senders off the delivery path) and sent with fetch, so production and the
 * tests' local push service take the same path.
 */
import webpush from "web-push";
import type { Config } from "../../config.ts";
import type { PushSubscriptionRecord, SettingsStore } from "../../store/store.ts";
import { type Alert, fitPayload } from "./alert_text.ts";
import {
  networkOutcome,
  requestSignal,
  retryable,
  SEND_TIMEOUT_MS,
  type Sender,
} from "./sender.ts";

/** The payload limit we keep to (push services take 4 KB, web-push does not check). */
export const MAX_PAYLOAD_BYTES = 3 * 1024;
/** How long a push service keeps an undelivered alert: fills are stale after a day. */
const TTL_SECONDS = 24 * 3600;

/** The VAPID key pair: from the environment, else generated once and kept in the store. */
export async function vapidKeys(
  config: Config,
  store: Pick<SettingsStore, "setSettingIfAbsent">,
): Promise<{ publicKey: string; privateKey: string }> {
  const { publicKey, privateKey } = config.vapid;
  if (publicKey && privateKey) return { publicKey, privateKey };
  const stored = await store.setSettingIfAbsent(
    "vapid",
    JSON.stringify(webpush.generateVAPIDKeys()),
  );
  return JSON.parse(stored);
}

/** The notification a browser shows (the service worker reads it); kept under 3 KB. */
export function pushPayload(alert: Alert): string {
  const o = alert.event.order;
  return fitPayload(alert, MAX_PAYLOAD_BYTES, ({ title, body }) =>
    JSON.stringify({
      title,
      body,
      ...alert.data,
      seq: alert.event.seq,
      status: o.status,
      url: `/orders/${o.id}`,
    }));
}

/** Whether a subscription endpoint is on an allowed push service (no SSRF via subscriptions). */
export function endpointAllowed(endpoint: string, allow: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  return allow.includes(url.origin);
}

/** The Web Push sender, signing with these VAPID keys. */
export function createWebPushSender(
  vapid: { subject: string; publicKey: string; privateKey: string },
  options: { timeoutMs?: number } = {},
): Sender<PushSubscriptionRecord> {
  const timeoutMs = options.timeoutMs ?? SEND_TIMEOUT_MS;
  return {
    platform: "web",
    async send(sub, alert, signal) {
      const details = webpush.generateRequestDetails(
        { endpoint: sub.endpoint, keys: sub.keys },
        pushPayload(alert),
        {
          vapidDetails: vapid,
          TTL: TTL_SECONDS,
          urgency: alert.event.type === "partial_fill" ? "normal" : "high",
          // One pending alert per order on an offline device: the latest replaces the rest.
          topic: alert.event.order.id.replaceAll("-", ""),
        },
      );
      let res: Response;
      try {
        res = await fetch(details.endpoint, {
          method: details.method,
          headers: details.headers as Record<string, string>,
          body: details.body as BodyInit,
          redirect: "manual",
          signal: requestSignal(timeoutMs, signal),
        });
        await res.body?.cancel();
      } catch (err) {
        return networkOutcome(err);
      }
      if (res.ok) return { kind: "sent" };
      // The browser unsubscribed or the subscription expired.
      if (res.status === 404 || res.status === 410) {
        return { kind: "gone", reason: `status ${res.status}` };
      }
      return retryable(res) ?? { kind: "failed", reason: `status ${res.status}` };
    },
  };
}
