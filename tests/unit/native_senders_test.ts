/**
 * The FCM and APNs senders against local fakes that check what Google and Apple check (the
 * grant's RS256 JWT, the bearer on every send, the ES256 provider token, every APNs header, the
 * payload's shape and size), and what each answer means. The fakes record anything that failed a
 * check in `problems`; every test ends by asserting it is empty.
 */
import assert from "node:assert/strict";
import { newOrder } from "../../orders/lifecycle.ts";
import { type OrderEvent, OrderRequest } from "../../orders/model.ts";
import { alertFor, alertText } from "../../realtime/push/alert_text.ts";
import { APNS_MAX_PAYLOAD_BYTES, apnsPayload, createApnsSender } from "../../realtime/push/apns.ts";
import { createFcmSender, fcmMessage } from "../../realtime/push/fcm.ts";
import { retryAfterMs } from "../../realtime/push/sender.ts";
import { apnsKey, serviceAccount } from "../fakes/credentials.ts";
import { type ApnsAnswer, startApnsFake } from "../fakes/apns_fake.ts";
import { type FcmAnswer, fcmError, startFcmFake } from "../fakes/fcm_fake.ts";

const ORDER_ID = "0190b4a0-7c1e-7000-8000-0000000000a1";

/** An event of `type` on a buy of `qty` `symbol`, as the store would hand it to the dispatcher. */
function event(type: string, extra: Partial<OrderEvent> = {}, symbol = "AAPL", qty = "10") {
  const { order } = newOrder(
    OrderRequest.parse({ symbol, asset_class: "stock", side: "buy", qty }),
    ORDER_ID,
    new Date("2026-12-01T14:30:00.000Z"),
  );
  return { seq: 7, type, at: order.created_at, order, ...extra } as OrderEvent;
}

const FILL = event("fill", {
  execution: { id: "x1", qty: "10", price: "187.35", at: "2026-12-01T14:30:01.000Z" },
  order: {
    ...event("fill").order,
    status: "filled",
    filled_qty: "10",
    filled_avg_price: "187.35",
  },
});
const REJECTED = event("rejected", { reason: "unknown symbol" }, "ZZZZ", "5");

Deno.test("alert text: the same actionable line on every platform, exact decimals", () => {
  assert.equal(alertText(FILL).title, "Filled: buy 10 AAPL @ 187.35");
  assert.equal(alertText(REJECTED).title, "Rejected: buy 5 ZZZZ — unknown symbol");
  const fcm = fcmMessage(alertFor(FILL));
  assert.deepEqual(fcm, {
    notification: alertText(FILL),
    data: { order_id: ORDER_ID, symbol: "AAPL", type: "fill", seq: "7" },
    android: { priority: "high", collapse_key: ORDER_ID },
  });
  assert.deepEqual(JSON.parse(apnsPayload(alertFor(FILL))), {
    aps: { alert: alertText(FILL), sound: "default", "thread-id": ORDER_ID },
    order_id: ORDER_ID,
    symbol: "AAPL",
    type: "fill",
    seq: "7",
  });
});

Deno.test("alert text: a venue's endless reason still fits in 4 KB on every platform", () => {
  const long = event("rejected", { reason: "é🚀".repeat(3000) });
  const apns = apnsPayload(alertFor(long));
  assert.ok(new TextEncoder().encode(apns).length <= APNS_MAX_PAYLOAD_BYTES);
  assert.match(JSON.parse(apns).aps.alert.title, /^Rejected: buy 10 AAPL — (é🚀)+é?…$/);
  const fcm = JSON.stringify(fcmMessage(alertFor(long)));
  assert.ok(new TextEncoder().encode(fcm).length <= 4096);
});

Deno.test("Retry-After is read as seconds or as an HTTP date, and capped", () => {
  assert.equal(retryAfterMs("2"), 2000);
  assert.equal(retryAfterMs(new Date(10_000 + 3000).toUTCString(), 10_000), 3000);
  assert.equal(retryAfterMs("86400"), 86_400_000, "as the service said it, not cut short");
  assert.equal(retryAfterMs("soon"), null);
  assert.equal(retryAfterMs(null), null);
});

/** An FCM fake and a sender configured for it. */
async function fcmSetup(answer?: (token: string, n: number) => FcmAnswer, expiresIn?: number) {
  let tokenUri = "";
  const account = await serviceAccount(() => tokenUri);
  const fake = startFcmFake({
    projectId: "blotter-test",
    clientEmail: account.clientEmail,
    publicKey: account.publicKey,
    expiresIn,
    answer: answer && ((r, n) => answer(r.token, n)),
  });
  tokenUri = fake.tokenUri;
  let clock = Date.now();
  const sender = createFcmSender({
    projectId: "blotter-test",
    serviceAccount: { clientEmail: account.clientEmail, privateKey: account.privateKey, tokenUri },
    endpoint: fake.origin,
  }, { now: () => clock });
  return { fake, sender, advance: (ms: number) => (clock += ms) };
}

Deno.test("fcm: the grant is verified, one access token serves many sends, renewed before expiry", async () => {
  const { fake, sender, advance } = await fcmSetup(undefined, 3600);
  // Start 56 minutes ago, so that "later" below is now by the fake's own clock.
  advance(-56 * 60_000);
  try {
    for (const token of ["tok-a", "tok-b", "tok-c"]) {
      assert.deepEqual(await sender.send({ token }, alertFor(FILL)), { kind: "sent" });
    }
    assert.equal(fake.issued.length, 1, "one grant for three sends");
    assert.deepEqual(fake.received.map((r) => r.token), ["tok-a", "tok-b", "tok-c"]);
    assert.deepEqual(fake.received[0].message.data, fcmMessage(alertFor(FILL)).data);
    advance(50 * 60_000); // 10 minutes left: still good
    await sender.send({ token: "tok-d" }, alertFor(FILL));
    assert.equal(fake.issued.length, 1);
    advance(6 * 60_000); // 4 minutes left: renewed first
    await sender.send({ token: "tok-e" }, alertFor(FILL));
    assert.equal(fake.issued.length, 2);
    assert.equal(fake.received.at(-1)!.accessToken, fake.issued[1]);
    assert.deepEqual(fake.problems, []);
  } finally {
    await fake.stop();
  }
});

Deno.test("fcm: a 401 gets a new access token once; a second 401 is a failure", async () => {
  const { fake, sender } = await fcmSetup((token) =>
    token === "always-401" ? fcmError(401, "UNAUTHENTICATED") : { status: 200 }
  );
  try {
    await sender.send({ token: "t1" }, alertFor(FILL));
    fake.revokeAccessTokens();
    assert.deepEqual(await sender.send({ token: "t2" }, alertFor(FILL)), { kind: "sent" });
    assert.equal(fake.issued.length, 2);
    const outcome = await sender.send({ token: "always-401" }, alertFor(FILL));
    assert.equal(outcome.kind, "failed");
    assert.equal(fake.issued.length, 3, "renewed once, not in a loop");
    assert.equal(fake.forToken("always-401").length, 2);
    assert.deepEqual(fake.problems, []);
  } finally {
    await fake.stop();
  }
});

Deno.test("fcm: what each answer means for the token", async () => {
  const table: Array<[string, FcmAnswer, string]> = [
    ["not-found", fcmError(404, "NOT_FOUND"), "gone"],
    ["unregistered", fcmError(400, "UNREGISTERED"), "gone"],
    [
      "unregistered-detail",
      fcmError(404, "NOT_FOUND", {
        details: [{
          "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
          errorCode: "UNREGISTERED",
        }],
      }),
      "gone",
    ],
    [
      "bad-token",
      fcmError(400, "INVALID_ARGUMENT", {
        details: [{
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "message.token", description: "Invalid registration token" }],
        }],
      }),
      "gone",
    ],
    ["bad-payload", fcmError(400, "INVALID_ARGUMENT"), "failed"],
    ["busy", { ...fcmError(429, "RESOURCE_EXHAUSTED"), headers: { "retry-after": "2" } }, "retry"],
    ["down", { status: 503, headers: { "retry-after": "3" } }, "retry"],
    ["forbidden", fcmError(403, "SENDER_ID_MISMATCH"), "failed"],
  ];
  const answers = new Map(table.map(([t, a]) => [t, a]));
  const { fake, sender } = await fcmSetup((token) => answers.get(token)!);
  try {
    for (const [token, , kind] of table) {
      const outcome = await sender.send({ token }, alertFor(FILL));
      assert.equal(outcome.kind, kind, `${token}: ${JSON.stringify(outcome)}`);
    }
    const busy = await sender.send({ token: "busy" }, alertFor(FILL));
    assert.deepEqual(busy, { kind: "retry", reason: "status 429", retryAfterMs: 2000 });
    assert.deepEqual(fake.problems, []);
  } finally {
    await fake.stop();
  }
});

Deno.test("fcm: a token endpoint that is down is a retry, not a crash", async () => {
  const sender = createFcmSender({
    projectId: "p",
    serviceAccount: {
      clientEmail: "x@y",
      privateKey: (await serviceAccount(() => "")).privateKey,
      tokenUri: "http://127.0.0.1:9/token",
    },
    endpoint: "http://127.0.0.1:9",
  });
  const outcome = await sender.send({ token: "t" }, alertFor(FILL));
  assert.equal(outcome.kind, "retry");
});

/** An APNs fake and a sender that trusts its CA (in-process: a client with the CA). */
async function apnsSetup(answer?: (token: string, n: number) => ApnsAnswer) {
  const key = await apnsKey();
  const fake = await startApnsFake({
    keyId: key.keyId,
    teamId: key.teamId,
    topic: key.topic,
    publicKey: key.publicKey,
    answer: answer && ((r, n) => answer(r.token, n)),
  });
  const client = Deno.createHttpClient({ caCerts: [fake.pki.caPem] });
  let clock = Date.now();
  const sender = createApnsSender(
    {
      keyId: key.keyId,
      teamId: key.teamId,
      key: key.privateKey,
      topic: key.topic,
      endpoint: fake.origin,
    },
    { fetch: (url, init) => fetch(url, { ...init, client }), now: () => clock },
  );
  return {
    fake,
    sender,
    setClock: (ms: number) => (clock = ms),
    async stop() {
      client.close();
      await fake.stop();
    },
  };
}

Deno.test("apns: HTTP/2 with a verified ES256 provider token, reused for 40 minutes", async () => {
  const t = await apnsSetup();
  try {
    t.setClock(Date.now() - 45 * 60_000); // a token made 45 minutes ago (Apple takes up to 60)
    assert.deepEqual(await t.sender.send({ token: "aa11" }, alertFor(FILL)), { kind: "sent" });
    t.setClock(Date.now() - 6 * 60_000); // 39 minutes later: still reused
    await t.sender.send({ token: "bb22" }, alertFor(REJECTED));
    assert.equal(t.fake.providerTokens.length, 1);
    t.setClock(Date.now()); // 45 minutes later: a new one
    await t.sender.send({ token: "cc33" }, alertFor(FILL));
    assert.equal(t.fake.providerTokens.length, 2);
    const [first] = t.fake.received;
    assert.equal(first.headers["apns-topic"], "com.example.blotter");
    assert.equal(first.headers["apns-push-type"], "alert");
    assert.equal(first.headers["apns-priority"], "10");
    assert.equal(first.headers["apns-collapse-id"], ORDER_ID);
    assert.ok(Number(first.headers["apns-expiration"]) > Date.now() / 1000);
    assert.equal(
      (first.body.aps as { alert: { title: string } }).alert.title,
      "Filled: buy 10 AAPL @ 187.35",
    );
    assert.deepEqual(t.fake.problems, []);
  } finally {
    await t.stop();
  }
});

Deno.test("apns: ExpiredProviderToken gets a new provider token once", async () => {
  const t = await apnsSetup((token) =>
    token === "always-expired" ? { status: 403, reason: "ExpiredProviderToken" } : { status: 200 }
  );
  try {
    await t.sender.send({ token: "aa11" }, alertFor(FILL));
    // Apple says the token expired (its iat is too old); a second later a new one is made.
    t.fake.expireIssuedBefore(t.fake.iatOf(t.fake.providerTokens[0]) + 1);
    t.setClock(Date.now() + 1000);
    assert.deepEqual(await t.sender.send({ token: "aa11" }, alertFor(FILL)), { kind: "sent" });
    assert.equal(t.fake.providerTokens.length, 2);
    // Refused as expired again right after: renewed once, not in a loop (Apple answers
    // TooManyProviderTokenUpdates to a provider that renews too often).
    t.setClock(Date.now() + 2000);
    const outcome = await t.sender.send({ token: "always-expired" }, alertFor(FILL));
    assert.equal(outcome.kind, "failed");
    assert.equal(t.fake.providerTokens.length, 3);
    assert.equal(t.fake.forToken("always-expired").length, 2);
    assert.deepEqual(t.fake.problems, []);
  } finally {
    await t.stop();
  }
});

Deno.test("apns: what each answer means for the token", async () => {
  const table: Array<[string, ApnsAnswer, string]> = [
    ["a410", { status: 410, reason: "Unregistered" }, "gone"],
    ["a400bad", { status: 400, reason: "BadDeviceToken" }, "gone"],
    ["a400topic", { status: 400, reason: "DeviceTokenNotForTopic" }, "gone"],
    ["a400other", { status: 400, reason: "BadCollapseId" }, "failed"],
    ["a429", { status: 429, reason: "TooManyRequests" }, "retry"],
    [
      "a503",
      { status: 503, reason: "ServiceUnavailable", headers: { "retry-after": "2" } },
      "retry",
    ],
    ["a403", { status: 403, reason: "InvalidProviderToken" }, "failed"],
  ];
  const answers = new Map(table.map(([t, a]) => [t, a]));
  const t = await apnsSetup((token) => answers.get(token)!);
  try {
    for (const [token, , kind] of table) {
      const outcome = await t.sender.send({ token }, alertFor(FILL));
      assert.equal(outcome.kind, kind, `${token}: ${JSON.stringify(outcome)}`);
    }
    assert.deepEqual(await t.sender.send({ token: "a503" }, alertFor(FILL)), {
      kind: "retry",
      reason: "status 503",
      retryAfterMs: 2000,
    });
    assert.deepEqual(t.fake.problems, []);
  } finally {
    await t.stop();
  }
});
