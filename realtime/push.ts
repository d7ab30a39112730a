/**
 * Web Push for devices whose page is not open (no stream in this process): fills, rejections,
 * cancels and expiries become a small encrypted notification. Sending costs ~2.6 ms of CPU each
 * (encryption + VAPID signing), so it runs from a bounded queue drained by a few workers, never on
 * the delivery path. Requests are built by web-push's `generateRequestDetails` and sent with
 * fetch, so production and the tests' local push service take the same path.
 */
import webpush from "web-push";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { OrderEvent, UserEvent } from "../orders/model.ts";
import type {
  AlertClaims,
  PushSubscriptionRecord,
  PushSubscriptionStore,
  SettingsStore,
} from "../store/store.ts";
import type { EventSink } from "./feed.ts";
import type { Hub } from "./hub.ts";
import type { Metrics } from "./metrics.ts";

/** The Web Push dispatcher. */
export interface PushDispatcher extends EventSink {
  /** The VAPID public key (base64url, 65-byte uncompressed P-256 point). */
  readonly publicKey: string;
  /** Resolves when the queue is empty and no send is in flight (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Event types worth interrupting a trader for. */
const ALERT_TYPES = new Set(["partial_fill", "fill", "rejected", "canceled", "expired"]);
/** The payload limit we keep to (push services take 4 KB, web-push does not check). */
export const MAX_PAYLOAD_BYTES = 3 * 1024;
const MAX_QUEUE = 10_000;
const WORKERS = 4;
const MAX_ATTEMPTS = 3;
/** How long a push service keeps an undelivered alert: fills are stale after a day. */
const TTL_SECONDS = 24 * 3600;

/** The VAPID key pair: from the environment, else generated once and kept in the store. */
async function vapidKeys(
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

/** The notification a device shows; kept under 3 KB. */
export function pushPayload(event: OrderEvent): string {
  const o = event.order;
  const what = `${o.side === "buy" ? "Buy" : "Sell"} ${o.qty ?? `$${o.notional}`} ${o.symbol}`;
  const title = {
    partial_fill: `Partially filled: ${o.symbol}`,
    fill: `Filled: ${o.symbol}`,
    rejected: `Rejected: ${o.symbol}`,
    canceled: `Canceled: ${o.symbol}`,
    expired: `Expired: ${o.symbol}`,
  }[event.type as string] ?? `${o.symbol}: ${event.type}`;
  let body = event.execution
    ? `${what}: ${event.execution.qty} @ ${event.execution.price} (${o.filled_qty} filled)`
    : `${what}${event.reason ? `: ${event.reason}` : ""}`;
  const make = () =>
    JSON.stringify({
      title,
      body,
      order_id: o.id,
      symbol: o.symbol,
      type: event.type,
      status: o.status,
      seq: event.seq,
      url: `/orders/${o.id}`,
    });
  let json = make();
  while (new TextEncoder().encode(json).length > MAX_PAYLOAD_BYTES) {
    body = body.slice(0, Math.floor(body.length / 2)) + "…";
    json = make();
  }
  return json;
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

/** Starts the dispatcher. */
export async function createPushDispatcher(deps: {
  config: Config;
  store: PushSubscriptionStore & AlertClaims & SettingsStore;
  hub: Hub;
  metrics: Metrics;
  log: Logger;
}): Promise<PushDispatcher> {
  const { config, store, hub, metrics, log } = deps;
  const keys = await vapidKeys(config, store);
  const vapidDetails = { subject: config.vapid.subject, ...keys };
  const queue: UserEvent[] = [];
  let active = 0;
  metrics.gauge(
    "blotter_push_queue_depth",
    "Web Push alerts waiting for a worker",
    () => queue.length,
  );
  let closed = false;
  let idleWaiters: Array<() => void> = [];

  const send = async (sub: PushSubscriptionRecord, event: OrderEvent) => {
    const details = webpush.generateRequestDetails(
      { endpoint: sub.endpoint, keys: sub.keys },
      pushPayload(event),
      {
        vapidDetails,
        TTL: TTL_SECONDS,
        urgency: event.type === "partial_fill" ? "normal" : "high",
        // One pending alert per order on an offline device: the latest replaces the rest.
        topic: event.order.id.replaceAll("-", ""),
      },
    );
    for (let attempt = 1;; attempt++) {
      let res: Response;
      try {
        res = await fetch(details.endpoint, {
          method: details.method,
          headers: details.headers as Record<string, string>,
          body: details.body as BodyInit,
          redirect: "manual",
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel();
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) {
          metrics.pushes.inc({ outcome: "failed_network" });
          log.warn("push failed", { err: String(err) });
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        continue;
      }
      if (res.ok) {
        metrics.pushes.inc({ outcome: "sent" });
        return;
      }
      if (res.status === 404 || res.status === 410) {
        // The browser unsubscribed or the subscription expired: forget it.
        await store.removePushSubscriptionByEndpoint(sub.endpoint);
        metrics.pushes.inc({ outcome: "removed" });
        return;
      }
      if ((res.status === 429 || res.status >= 500) && attempt < MAX_ATTEMPTS) {
        const retryAfter = Number(res.headers.get("retry-after"));
        const wait = Number.isFinite(retryAfter) && retryAfter > 0
          ? Math.min(retryAfter * 1000, 60_000)
          : 500 * 2 ** attempt;
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      metrics.pushes.inc({ outcome: `failed_${res.status}` });
      return;
    }
  };

  const handle = async ({ user_id, event }: UserEvent) => {
    // A device with an open stream sees the change on screen; push only the others.
    const targets = (await store.listPushSubscriptions(user_id))
      .filter((sub) => config.pushAlways || !hub.hasSessionStream(sub.session_id));
    if (targets.length === 0) return;
    // Every instance hears every event; only the one that claims it sends the alert.
    if (!(await store.claimAlert(user_id, event.seq, new Date()))) {
      metrics.pushes.inc({ outcome: "claimed_elsewhere" });
      return;
    }
    for (const sub of targets) await send(sub, event);
  };

  const pump = () => {
    while (!closed && active < WORKERS && queue.length > 0) {
      const job = queue.shift()!;
      active++;
      handle(job).catch((err) => log.warn("push job failed", { err: String(err) })).finally(() => {
        active--;
        pump();
      });
    }
    if (active === 0 && queue.length === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      waiters.forEach((w) => w());
    }
  };

  return {
    publicKey: keys.publicKey,
    onEvents(batch) {
      for (const ue of batch) {
        if (!ALERT_TYPES.has(ue.event.type)) continue;
        if (queue.length >= MAX_QUEUE) {
          metrics.pushes.inc({ outcome: "dropped_queue_full" });
          continue;
        }
        queue.push(ue);
      }
      pump();
    },
    idle: () =>
      active === 0 && queue.length === 0
        ? Promise.resolve()
        : new Promise<void>((r) => idleWaiters.push(r)),
    async close() {
      closed = true;
      queue.length = 0;
      if (active > 0) await new Promise<void>((r) => idleWaiters.push(r));
    },
  };
}
