/**
 * The push dispatcher: for each alert-worthy event, every device session of the user without an
 * open stream gets one alert through its platform (Web Push, FCM, APNs). Every instance hears
 * every event; the one that claims it in the store sends. Sending runs from one bounded queue in
 * lanes (one per platform, each with a few workers), never on the delivery path, so a push
 * service that hangs holds up only its own lane and never a stream. Retries back off, honouring
 * `Retry-After`; an answer that says a target is gone deletes it.
 */
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import { ALERT_EVENT_TYPES, type UserEvent } from "../../orders/model.ts";
import type {
  AlertClaims,
  PushDeviceRecord,
  PushDeviceStore,
  PushSubscriptionRecord,
  PushSubscriptionStore,
  SettingsStore,
} from "../../store/store.ts";
import type { EventSink } from "../feed.ts";
import type { Hub } from "../hub.ts";
import type { Metrics } from "../metrics.ts";
import { type Alert, alertFor } from "./alert_text.ts";
import { createApnsSender } from "./apns.ts";
import { createFcmSender } from "./fcm.ts";
import type { Platform, Sender, SendOutcome } from "./sender.ts";
import { createWebPushSender, vapidKeys } from "./web_push.ts";

/** The push dispatcher. */
export interface PushDispatcher extends EventSink {
  /** The VAPID public key (base64url, 65-byte uncompressed P-256 point). */
  readonly publicKey: string;
  /** Which native platforms are configured (a token for one that is off is refused). */
  readonly native: { readonly fcm: boolean; readonly apns: boolean };
  /** Resolves when nothing is queued, waiting to retry or in flight (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** What the dispatcher asks of the store: whom to alert, the claim, forgetting dead targets. */
export type AlertStore =
  & Pick<PushSubscriptionStore, "listPushSubscriptions" | "removePushSubscriptionByEndpoint">
  & Pick<PushDeviceStore, "listPushDevices" | "removePushDeviceByToken">
  & AlertClaims
  & Pick<SettingsStore, "setSettingIfAbsent">;

/** The senders per platform; native ones only when configured. */
export interface Senders {
  web: Sender<PushSubscriptionRecord>;
  fcm?: Sender<PushDeviceRecord>;
  apns?: Sender<PushDeviceRecord>;
}

type Lane = "event" | Platform;
type Job =
  | { lane: "event"; ue: UserEvent }
  | { lane: "web"; target: PushSubscriptionRecord; alert: Alert; attempt: number }
  | { lane: "fcm" | "apns"; target: PushDeviceRecord; alert: Alert; attempt: number };

/** Jobs queued or waiting to retry, all lanes together: past it, alerts are dropped and counted. */
const MAX_QUEUE = 10_000;
/** Concurrent jobs per lane: lookups + claims, and requests to each push service. */
const WORKERS: Record<Lane, number> = { event: 4, web: 4, fcm: 4, apns: 4 };
/** Tries per alert and target, the first included. */
const MAX_ATTEMPTS = 3;
/** The longest Retry-After an alert waits out; past it the alert is given up, not sent early. */
const MAX_RETRY_WAIT_MS = 60_000;

/** Backoff before retry `attempt` (1-based) when the service did not say: ~1 s, ~2 s, jittered. */
function backoffMs(attempt: number): number {
  return 500 * 2 ** attempt * (1 + Math.random() * 0.25);
}

/** The senders the config asks for. */
export async function sendersFor(config: Config, store: AlertStore): Promise<{
  senders: Senders;
  publicKey: string;
}> {
  const keys = await vapidKeys(config, store);
  return {
    publicKey: keys.publicKey,
    senders: {
      web: createWebPushSender({ subject: config.vapid.subject, ...keys }),
      fcm: config.fcm ? createFcmSender(config.fcm) : undefined,
      apns: config.apns ? createApnsSender(config.apns) : undefined,
    },
  };
}

/** Starts the dispatcher (`senders` for tests; by default what the config asks for). */
export async function createPushDispatcher(deps: {
  config: Config;
  store: AlertStore;
  hub: Hub;
  metrics: Metrics;
  log: Logger;
  senders?: { senders: Senders; publicKey: string };
}): Promise<PushDispatcher> {
  const { config, store, hub, metrics, log } = deps;
  const { senders, publicKey } = deps.senders ?? await sendersFor(config, store);
  const lanes: Record<Lane, Job[]> = { event: [], web: [], fcm: [], apns: [] };
  const active: Record<Lane, number> = { event: 0, web: 0, fcm: 0, apns: 0 };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  /** Aborts requests in flight at shutdown: a hung push service must not hold the exit. */
  const closing = new AbortController();
  let queued = 0;
  let closed = false;
  let idleWaiters: Array<() => void> = [];
  metrics.gauge(
    "blotter_push_queue_depth",
    "Push alerts waiting for a worker or a retry, every platform together",
    () => queued + timers.size,
  );

  const enqueue = (job: Job): boolean => {
    if (closed) return false;
    if (queued + timers.size >= MAX_QUEUE) {
      metrics.pushEvents.inc({ outcome: "dropped_queue_full" });
      if (job.lane !== "event") metrics.pushes.inc({ platform: job.lane, outcome: "failed" });
      return false;
    }
    lanes[job.lane].push(job);
    queued++;
    return true;
  };

  /** Whom this event alerts: sessions of the user with no open stream, on a configured platform. */
  const targetsOf = async (userId: string) => {
    const away = (sessionId: string) => config.pushAlways || !hub.hasSessionStream(sessionId);
    const [subs, devices] = await Promise.all([
      store.listPushSubscriptions(userId),
      store.listPushDevices(userId),
    ]);
    return {
      subs: subs.filter((s) => away(s.session_id)),
      devices: devices.filter((d) => senders[d.platform] && away(d.session_id)),
    };
  };

  const expand = async ({ user_id, event }: UserEvent) => {
    const { subs, devices } = await targetsOf(user_id);
    if (subs.length + devices.length === 0) {
      metrics.pushEvents.inc({ outcome: "no_target" });
      return;
    }
    // Every instance hears every event; only the one that claims it sends the alerts.
    if (!(await store.claimAlert(user_id, event.seq, new Date()))) {
      metrics.pushEvents.inc({ outcome: "claimed_elsewhere" });
      return;
    }
    metrics.pushEvents.inc({ outcome: "claimed" });
    const alert = alertFor(event);
    for (const target of subs) enqueue({ lane: "web", target, alert, attempt: 1 });
    for (const target of devices) enqueue({ lane: target.platform, target, alert, attempt: 1 });
  };

  const forget = async (job: Exclude<Job, { lane: "event" }>) => {
    if (job.lane === "web") await store.removePushSubscriptionByEndpoint(job.target.endpoint);
    else await store.removePushDeviceByToken(job.target.token);
  };

  const settle = async (job: Exclude<Job, { lane: "event" }>, outcome: SendOutcome) => {
    const platform = job.lane;
    const fields = { platform, order_id: job.alert.data.order_id, attempt: job.attempt };
    switch (outcome.kind) {
      case "sent":
        metrics.pushes.inc({ platform, outcome: "sent" });
        log.debug("push sent", fields);
        return;
      case "gone":
        // The target will never work again: delete it so no instance tries it again.
        await forget(job);
        metrics.pushes.inc({ platform, outcome: "token_deleted" });
        log.info("push target gone; deleted", { ...fields, reason: outcome.reason });
        return;
      case "retry": {
        const wait = outcome.retryAfterMs ?? backoffMs(job.attempt);
        // Retry-After is honoured, never cut short: an alert the service wants held for longer
        // than it is worth is given up instead (a fill alert a minute late says little).
        if (job.attempt < MAX_ATTEMPTS && !closed && wait <= MAX_RETRY_WAIT_MS) {
          metrics.pushes.inc({ platform, outcome: "retried" });
          log.debug("push will be retried", { ...fields, reason: outcome.reason, wait_ms: wait });
          const timer = setTimeout(() => {
            timers.delete(timer);
            enqueue({ ...job, attempt: job.attempt + 1 } as Job);
            pump();
          }, wait);
          timers.add(timer);
          return;
        }
        metrics.pushes.inc({ platform, outcome: "failed" });
        log.warn("push failed after retries", { ...fields, reason: outcome.reason });
        return;
      }
      case "failed":
        metrics.pushes.inc({ platform, outcome: "failed" });
        log.warn("push refused", { ...fields, reason: outcome.reason });
        return;
    }
  };

  const run = async (job: Job) => {
    if (job.lane === "event") return await expand(job.ue);
    const outcome = job.lane === "web"
      ? await senders.web.send(job.target, job.alert, closing.signal)
      : await senders[job.lane]!.send(job.target, job.alert, closing.signal);
    if (closed) {
      log.debug("push abandoned at shutdown", { platform: job.lane, outcome: outcome.kind });
      return;
    }
    await settle(job, outcome);
  };

  const pump = () => {
    for (const lane of Object.keys(lanes) as Lane[]) {
      while (!closed && active[lane] < WORKERS[lane] && lanes[lane].length > 0) {
        const job = lanes[lane].shift()!;
        queued--;
        active[lane]++;
        run(job)
          .catch((err) => log.warn("push job failed", { lane, err: String(err) }))
          .finally(() => {
            active[lane]--;
            pump();
          });
      }
    }
    const busy = queued + timers.size + Object.values(active).reduce((a, b) => a + b, 0);
    if (busy === 0 || (closed && Object.values(active).every((n) => n === 0))) {
      const waiters = idleWaiters;
      idleWaiters = [];
      waiters.forEach((w) => w());
    }
  };

  return {
    publicKey,
    native: { fcm: Boolean(senders.fcm), apns: Boolean(senders.apns) },
    onEvents(batch) {
      for (const ue of batch) {
        if (ALERT_EVENT_TYPES.has(ue.event.type)) enqueue({ lane: "event", ue });
      }
      pump();
    },
    idle: () =>
      new Promise<void>((r) => {
        idleWaiters.push(r);
        pump();
      }),
    async close() {
      closed = true;
      closing.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const lane of Object.values(lanes)) lane.length = 0;
      queued = 0;
      await new Promise<void>((r) => {
        idleWaiters.push(r);
        pump();
      });
    },
  };
}
