/**
 * The dispatcher's own rules, with senders that answer as told (the senders themselves are tested
 * against fakes of the real services in native_senders_test.ts): each alert-worthy event is
 * claimed once and fans out to every target; retries stop after three tries; a "gone" answer
 * deletes exactly that target; non-alert events send nothing.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../config.ts";
import { silentLogger } from "../../log.ts";
import { newOrder } from "../../orders/lifecycle.ts";
import { type OrderEvent, OrderRequest, type UserEvent } from "../../orders/model.ts";
import { Hub } from "../../realtime/hub.ts";
import { Metrics } from "../../realtime/metrics.ts";
import { createPushDispatcher } from "../../realtime/push/dispatcher.ts";
import type { Sender, SendOutcome } from "../../realtime/push/sender.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import type { PushDeviceRecord, PushSubscriptionRecord } from "../../store/store.ts";

const USER = "dana";

function userEvent(seq: number, type: string): UserEvent {
  const { order } = newOrder(
    OrderRequest.parse({ symbol: "MSFT", asset_class: "stock", side: "sell", qty: "2" }),
    crypto.randomUUID(),
    new Date(),
  );
  return { user_id: USER, event: { seq, type, at: order.created_at, order } as OrderEvent };
}

/** A sender that records what it was asked and answers `answer(target)`. */
function scripted<T>(platform: "web" | "fcm" | "apns", answer: (target: T) => SendOutcome) {
  const calls: T[] = [];
  const sender: Sender<T> = {
    platform,
    send(target) {
      calls.push(target);
      return Promise.resolve(answer(target));
    },
  };
  return { sender, calls };
}

Deno.test("dispatcher: one claim per event, every target once, retries bounded, gone deletes", async () => {
  const store = await openKvStore(":memory:");
  const metrics = new Metrics();
  const now = new Date().toISOString();
  const device = (token: string, platform: "fcm" | "apns"): PushDeviceRecord => ({
    token,
    platform,
    user_id: USER,
    session_id: `s-${token}`,
    created_at: now,
  });
  await store.addPushDevice(device("ok-fcm", "fcm"));
  await store.addPushDevice(device("dead-fcm", "fcm"));
  await store.addPushDevice(device("busy-apns", "apns"));
  const sub: PushSubscriptionRecord = {
    endpoint: "https://push.example/1",
    keys: { p256dh: "p", auth: "a" },
    user_id: USER,
    session_id: "s-web",
    created_at: now,
  };
  await store.addPushSubscription(sub);
  const web = scripted<PushSubscriptionRecord>("web", () => ({ kind: "sent" }));
  const fcm = scripted<PushDeviceRecord>(
    "fcm",
    (d) => d.token === "dead-fcm" ? { kind: "gone", reason: "unregistered" } : { kind: "sent" },
  );
  const apns = scripted<PushDeviceRecord>("apns", () => ({
    kind: "retry",
    reason: "status 503",
    retryAfterMs: 1,
  }));
  const push = await createPushDispatcher({
    config: loadConfig({ AUTH_MODE: "dev" }),
    store,
    hub: new Hub({ maxStreamsPerUser: 10, metrics }),
    metrics,
    log: silentLogger,
    senders: { publicKey: "k", senders: { web: web.sender, fcm: fcm.sender, apns: apns.sender } },
  });
  try {
    push.onEvents([userEvent(1, "new"), userEvent(2, "fill"), userEvent(2, "fill")]);
    await push.idle();
    assert.equal(web.calls.length, 1, "the event heard twice is claimed once");
    assert.deepEqual(fcm.calls.map((d) => d.token).sort(), ["dead-fcm", "ok-fcm"]);
    assert.equal(apns.calls.length, 3, "three tries, then it counts as failed");
    assert.equal(metrics.pushes.value({ platform: "apns", outcome: "retried" }), 2);
    assert.equal(metrics.pushes.value({ platform: "apns", outcome: "failed" }), 1);
    assert.equal(metrics.pushes.value({ platform: "fcm", outcome: "token_deleted" }), 1);
    assert.equal(metrics.pushes.value({ platform: "fcm", outcome: "sent" }), 1);
    assert.equal(metrics.pushEvents.value({ outcome: "claimed_elsewhere" }), 1);
    assert.deepEqual((await store.listPushDevices(USER)).map((d) => d.token).sort(), [
      "busy-apns",
      "ok-fcm",
    ]);
    // The deleted token is not tried again; the live one is.
    push.onEvents([userEvent(3, "rejected")]);
    await push.idle();
    assert.equal(fcm.calls.length, 3);
  } finally {
    await push.close();
    await store.close();
  }
});

Deno.test("dispatcher: tokens of a platform that is off are neither sent to nor deleted", async () => {
  const store = await openKvStore(":memory:");
  const metrics = new Metrics();
  await store.addPushDevice({
    token: "ios",
    platform: "apns",
    user_id: USER,
    session_id: "s",
    created_at: new Date().toISOString(),
  });
  const web = scripted<PushSubscriptionRecord>("web", () => ({ kind: "sent" }));
  const push = await createPushDispatcher({
    config: loadConfig({ AUTH_MODE: "dev" }),
    store,
    hub: new Hub({ maxStreamsPerUser: 10, metrics }),
    metrics,
    log: silentLogger,
    senders: { publicKey: "k", senders: { web: web.sender } },
  });
  try {
    assert.deepEqual(push.native, { fcm: false, apns: false });
    push.onEvents([userEvent(1, "fill")]);
    await push.idle();
    assert.equal(metrics.pushEvents.value({ outcome: "claimed" }), 0, "no target: no claim");
    assert.equal((await store.listPushDevices(USER)).length, 1);
  } finally {
    await push.close();
    await store.close();
  }
});
