/**
 * Native push end to end: a real Blotter process (so it trusts the test CA through DENO_CERT, as
 * production trusts Apple's) sends to a local FCM (token endpoint + HTTP v1) and a local APNs
 * (HTTP/2 over TLS), both of which check what Google and Apple check. Alerts follow CONTRACT:
 * one per alert-worthy event to each device session without an open stream.
 */
import assert from "node:assert/strict";
import { api, eventually, INGEST_TOKEN, login, spawnServer, SseClient } from "../helpers.ts";
import { TEST_BUS_URL } from "../nats_helper.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { type ApnsAnswer, startApnsFake } from "../fakes/apns_fake.ts";
import { apnsKey, serviceAccount } from "../fakes/credentials.ts";
import { type FcmAnswer, fcmError, startFcmFake } from "../fakes/fcm_fake.ts";

type FcmRule = (token: string, n: number) => FcmAnswer | Promise<FcmAnswer>;
type ApnsRule = (token: string, n: number) => ApnsAnswer | Promise<ApnsAnswer>;

/** Both fakes, the credentials they check, and the settings that point Blotter at them. */
async function nativeServices(rules: { fcm?: FcmRule; apns?: ApnsRule } = {}) {
  let tokenUri = "";
  const account = await serviceAccount(() => tokenUri);
  const fcm = startFcmFake({
    projectId: "blotter-test",
    clientEmail: account.clientEmail,
    publicKey: account.publicKey,
    answer: rules.fcm && ((r, n) => rules.fcm!(r.token, n)),
  });
  tokenUri = fcm.tokenUri;
  const key = await apnsKey();
  const apns = await startApnsFake({
    keyId: key.keyId,
    teamId: key.teamId,
    topic: key.topic,
    publicKey: key.publicKey,
    answer: rules.apns && ((r, n) => rules.apns!(r.token, n)),
  });
  const env = {
    AUTH_MODE: "dev",
    KV_PATH: ":memory:",
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    SIMULATOR: "off",
    FCM_PROJECT_ID: "blotter-test",
    FCM_SERVICE_ACCOUNT: account.json(),
    FCM_ENDPOINT: fcm.origin,
    APNS_KEY_ID: key.keyId,
    APNS_TEAM_ID: key.teamId,
    APNS_KEY: key.privateKey,
    APNS_TOPIC: key.topic,
    APNS_ENDPOINT: apns.origin,
    DENO_CERT: apns.pki.caPath,
  };
  return {
    fcm,
    apns,
    env,
    secrets: [account.privateKey, key.privateKey],
    async stop() {
      await fcm.stop();
      await apns.stop();
    },
  };
}

/** Registers a device token for a session; answers the status. */
async function register(url: string, bearer: string, platform: string, token: string) {
  return (await api(url, bearer, "POST", "/api/v1/push/devices", { platform, token })).status;
}

/** Places a buy of `qty` `symbol` for the bearer's user; answers the order id. */
async function place(url: string, bearer: string, symbol = "AAPL", qty = "10"): Promise<string> {
  const { status, json } = await api(url, bearer, "POST", "/api/v1/orders", {
    symbol,
    asset_class: "stock",
    side: "buy",
    qty,
  });
  assert.equal(status, 201);
  return json.id;
}

let execs = 0;
/** Ingests reports for an order, in order (`type` plus any fields). */
async function report(url: string, orderId: string, ...reports: Record<string, string>[]) {
  const at = new Date().toISOString();
  const body = reports.map((r) => ({ order_id: orderId, exec_id: `e-${++execs}`, at, ...r }));
  const res = await api(url, INGEST_TOKEN, "POST", "/api/v1/executions", body);
  assert.equal(res.status, 200, JSON.stringify(res.json));
}

/** One metric's value from /metrics (0 when absent). */
async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}
const sent = (p: string) => `blotter_push_total{outcome="sent",platform="${p}"}`;

Deno.test({
  name:
    "native push: one alert per alert-worthy event to each backgrounded device, none to one with an open stream; no token, key or access token in any log line",
  async fn() {
    const svc = await nativeServices();
    const server = await spawnServer({ ...svc.env, LOG_LEVEL: "debug" });
    const url = server.url;
    const android = "fcm-token:APA91b-android_1.x";
    const iphone = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const ipad = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
    let log = "";
    const secrets = [...svc.secrets, android, iphone, ipad];
    try {
      const [phone, ios, tablet] = [
        await login(url, "nia"),
        await login(url, "nia"),
        await login(
          url,
          "nia",
        ),
      ];
      secrets.push(phone.token, ios.token, tablet.token);
      assert.equal(await register(url, phone.token, "fcm", android), 201);
      assert.equal(await register(url, phone.token, "fcm", android), 200, "same session again");
      assert.equal(await register(url, ios.token, "apns", iphone), 201);
      assert.equal(await register(url, tablet.token, "apns", ipad), 201);
      assert.equal(await register(url, tablet.token, "apns", "not a token!"), 400);
      assert.equal(await register(url, tablet.token, "apns", "a".repeat(4097)), 400);
      // The tablet is in the foreground: it follows the stream, so it gets no alerts.
      const live = await SseClient.open(`${url}/api/v1/stream`, {
        authorization: `Bearer ${tablet.token}`,
      });

      const a = await place(url, phone.token);
      await report(url, a, { type: "new" }, {
        type: "partial_fill",
        last_qty: "4",
        last_price: "187.3",
      }, { type: "fill", last_qty: "6", last_price: "187.4" });
      const b = await place(url, phone.token, "ZZZZ", "5");
      await report(url, b, { type: "rejected", reason: "unknown symbol" });
      const c = await place(url, phone.token);
      await report(url, c, { type: "new" }, { type: "canceled" });
      const d = await place(url, phone.token);
      await report(url, d, { type: "new" }, { type: "expired" });
      await live.until((s) => s.orders().length === 12);

      const alerts = ["partial_fill", "fill", "rejected", "canceled", "expired"];
      await eventually(async () =>
        (await metric(url, sent("fcm"))) === 5 && (await metric(url, sent("apns"))) === 5
      );
      assert.deepEqual(
        svc.fcm.forToken(android).map((r) => r.message.data).map((d) =>
          (d as { type: string }).type
        ).sort(),
        [...alerts].sort(),
      );
      assert.deepEqual(
        svc.apns.forToken(iphone).map((r) => r.body.type).sort(),
        [...alerts].sort(),
      );
      assert.equal(svc.apns.forToken(ipad).length, 0, "no alert to the device watching the stream");
      assert.equal(svc.fcm.issued.length, 1, "one access token for every send");

      // The fill reads the same on both platforms, with the exact average price.
      const fcmFill = svc.fcm.forToken(android).find((r) =>
        (r.message.data as { type: string }).type === "fill"
      )!;
      const apnsFill = svc.apns.forToken(iphone).find((r) => r.body.type === "fill")!;
      // 4 @ 187.3 and 6 @ 187.4: an average of exactly 187.36.
      const title = "Filled: buy 10 AAPL @ 187.36";
      assert.equal((fcmFill.message.notification as { title: string }).title, title);
      assert.equal((apnsFill.body.aps as { alert: { title: string } }).alert.title, title);
      const fillSeq = live.orders().find((e) => e.type === "fill" && e.order.id === a)!.seq;
      assert.deepEqual(fcmFill.message.data, {
        order_id: a,
        symbol: "AAPL",
        type: "fill",
        seq: String(fillSeq),
      });
      assert.equal(apnsFill.headers["apns-collapse-id"], a);
      const rejected = svc.apns.forToken(iphone).find((r) => r.body.type === "rejected")!;
      assert.equal(
        (rejected.body.aps as { alert: { title: string } }).alert.title,
        "Rejected: buy 5 ZZZZ — unknown symbol",
      );
      secrets.push(...svc.fcm.issued, ...svc.apns.providerTokens);
      live.close();
      assert.deepEqual(svc.fcm.problems, []);
      assert.deepEqual(svc.apns.problems, []);
    } finally {
      log = await server.stop();
      await svc.stop();
    }
    assert.ok(log.includes('"message":"push sent"'), "the sends were logged (at debug)");
    for (const secret of secrets) {
      // A long key is searched by a slice of its body: no part of it may be printed.
      const needle = secret.includes("PRIVATE KEY") ? secret.split("\n")[2] : secret;
      assert.ok(!log.includes(needle), `a secret appears in the log: ${needle.slice(0, 8)}…`);
    }
  },
});

Deno.test({
  name:
    "native push: a dead token is deleted after its first answer; a revoked session's token is silent; a token that moved users alerts only its new user",
  async fn() {
    const svc = await nativeServices({
      fcm: (t) => t === "dead-fcm" ? fcmError(404, "NOT_FOUND") : { status: 200 },
      apns: (t) => t === "dead-apns" ? { status: 410, reason: "Unregistered" } : { status: 200 },
    });
    const server = await spawnServer(svc.env);
    const url = server.url;
    try {
      const [s1, s2, s3] = [
        await login(url, "dee"),
        await login(url, "dee"),
        await login(url, "dee"),
      ];
      assert.equal(await register(url, s1.token, "fcm", "dead-fcm"), 201);
      assert.equal(await register(url, s2.token, "apns", "dead-apns"), 201);
      // A live device on another session: its alerts show when an event has been handled.
      assert.equal(await register(url, s3.token, "fcm", "alive-fcm"), 201);
      const rejectOne = async (bearer: string) =>
        await report(url, await place(url, bearer, "ZZZZ", "1"), {
          type: "rejected",
          reason: "unknown symbol",
        });
      await rejectOne(s1.token);
      await eventually(async () =>
        (await metric(url, `blotter_push_total{outcome="token_deleted",platform="fcm"}`)) === 1 &&
        (await metric(url, `blotter_push_total{outcome="token_deleted",platform="apns"}`)) === 1
      );
      await rejectOne(s1.token);
      await eventually(() => svc.fcm.forToken("alive-fcm").length === 2);
      assert.equal(svc.fcm.forToken("dead-fcm").length, 1, "deleted after its first answer");
      assert.equal(svc.apns.forToken("dead-apns").length, 1, "deleted after its first answer");

      // A session signed out: its token goes with it.
      const [r1, r2] = [await login(url, "rex"), await login(url, "rex")];
      assert.equal(await register(url, r1.token, "apns", "revoked-apns"), 201);
      assert.equal(await register(url, r2.token, "fcm", "rex-live"), 201);
      const revoke = await api(url, r1.token, "DELETE", `/api/v1/sessions/${r1.session_id}`);
      assert.equal(revoke.status, 204);
      await rejectOne(r2.token);
      await eventually(() => svc.fcm.forToken("rex-live").length === 1);
      assert.equal(svc.apns.forToken("revoked-apns").length, 0);

      // A phone handed from ann to bob: the token follows the newest registration.
      const ann = await login(url, "ann");
      const ann2 = await login(url, "ann");
      const bob = await login(url, "bob");
      assert.equal(await register(url, ann.token, "fcm", "handed-on"), 201);
      assert.equal(await register(url, ann2.token, "apns", "ann-ipad"), 201);
      assert.equal(await register(url, bob.token, "fcm", "handed-on"), 201, "moved to bob");
      await rejectOne(ann.token);
      await eventually(() => svc.apns.forToken("ann-ipad").length === 1);
      assert.equal(svc.fcm.forToken("handed-on").length, 0, "ann's alert does not reach bob");
      await rejectOne(bob.token);
      await eventually(() => svc.fcm.forToken("handed-on").length === 1);
      // Ann cannot take it off bob by deleting it.
      assert.equal(
        (await api(url, ann.token, "DELETE", "/api/v1/push/devices", {
          token: "handed-on",
        })).status,
        204,
      );
      await rejectOne(bob.token);
      await eventually(() => svc.fcm.forToken("handed-on").length === 2);
      assert.deepEqual(svc.fcm.problems, []);
      assert.deepEqual(svc.apns.problems, []);
    } finally {
      await server.stop();
      await svc.stop();
    }
  },
});

Deno.test({
  name:
    "native push: a 503 with Retry-After is retried once and delivered; a 401 and an ExpiredProviderToken get a new token once",
  async fn() {
    const busy = (n: number) => n === 1;
    let fcmCalls = 0;
    let apnsCalls = 0;
    const svc = await nativeServices({
      fcm: () =>
        busy(++fcmCalls) ? { status: 503, headers: { "retry-after": "1" } } : { status: 200 },
      apns: () =>
        busy(++apnsCalls)
          ? { status: 503, reason: "ServiceUnavailable", headers: { "retry-after": "1" } }
          : { status: 200 },
    });
    const server = await spawnServer(svc.env);
    const url = server.url;
    try {
      const [p1, p2] = [await login(url, "ray"), await login(url, "ray")];
      assert.equal(await register(url, p1.token, "fcm", "ray-android"), 201);
      assert.equal(await register(url, p2.token, "apns", "ray-iphone"), 201);
      const fillOne = async () => {
        const id = await place(url, p1.token, "AAPL", "1");
        await report(url, id, { type: "fill", last_qty: "1", last_price: "190.01" });
      };
      await fillOne();
      await eventually(async () =>
        (await metric(url, sent("fcm"))) === 1 && (await metric(url, sent("apns"))) === 1
      );
      const arrivals: Array<[string, { at: number }[]]> = [
        ["fcm", svc.fcm.received],
        ["apns", svc.apns.received],
      ];
      for (const [platform, got] of arrivals) {
        assert.equal(got.length, 2, `${platform}: the 503, then the retry`);
        // The retry waited the second the service asked for (a lower bound, not a timing race).
        assert.ok(
          got[1].at - got[0].at >= 990,
          `${platform} retried after ${got[1].at - got[0].at} ms`,
        );
        assert.equal(
          await metric(url, `blotter_push_total{outcome="retried",platform="${platform}"}`),
          1,
        );
      }

      // The access token is revoked and the provider token expires: each is renewed, once.
      svc.fcm.revokeAccessTokens();
      const iat = svc.apns.iatOf(svc.apns.providerTokens[0]);
      svc.apns.expireIssuedBefore(iat + 1);
      // A new provider token made in the same second as the old would be the same token.
      await eventually(() => Date.now() / 1000 >= iat + 1);
      await fillOne();
      await eventually(async () =>
        (await metric(url, sent("fcm"))) === 2 && (await metric(url, sent("apns"))) === 2
      );
      assert.equal(svc.fcm.issued.length, 2);
      assert.equal(svc.apns.providerTokens.length, 2);
      assert.equal(svc.fcm.received.length, 3, "a 401 is not a received message");
      assert.deepEqual(svc.fcm.problems, []);
      assert.deepEqual(svc.apns.problems, []);
    } finally {
      await server.stop();
      await svc.stop();
    }
  },
});

Deno.test({
  name: "native push: a hanging push service does not delay streams",
  async fn() {
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    const svc = await nativeServices({
      fcm: async () => (await hung, { status: 200 }),
      apns: async () => (await hung, { status: 200 }),
    });
    const server = await spawnServer(svc.env);
    const url = server.url;
    try {
      const [away, away2, here] = [
        await login(url, "hal"),
        await login(url, "hal"),
        await login(
          url,
          "hal",
        ),
      ];
      assert.equal(await register(url, away.token, "fcm", "hal-android"), 201);
      assert.equal(await register(url, away2.token, "apns", "hal-iphone"), 201);
      const live = await SseClient.open(`${url}/api/v1/stream`, {
        authorization: `Bearer ${here.token}`,
      });
      // More fills than a lane has workers: the alerts back up behind the hung services.
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const id = await place(url, here.token, "AAPL", "1");
        await report(url, id, { type: "fill", last_qty: "1", last_price: "190" });
        ids.push(id);
      }
      await live.until((s) => s.orders().filter((e) => e.type === "fill").length === 12);
      assert.deepEqual(live.orders().filter((e) => e.type === "fill").map((e) => e.order.id), ids);
      await eventually(() => svc.fcm.received.length >= 1 && svc.apns.received.length >= 1);
      assert.equal(await metric(url, sent("fcm")), 0, "no FCM send has completed");
      assert.equal(await metric(url, sent("apns")), 0, "no APNs send has completed");
      assert.ok((await metric(url, "blotter_push_queue_depth")) > 0, "the backlog is visible");
      live.close();
    } finally {
      // Stops while sends hang: shutdown aborts them instead of waiting out their timeout.
      const out = await server.stop();
      assert.doesNotMatch(out, /shutdown took too long/);
      release();
      await svc.stop();
    }
  },
});

Deno.test({
  name: "native push: two instances on one database send each alert once",
  ignore: NO_POSTGRES,
  async fn() {
    const svc = await nativeServices();
    const schema = freshSchema();
    const env = { ...svc.env, DATABASE_URL, DATABASE_SCHEMA: schema };
    const a = await spawnServer(env);
    const b = await spawnServer(env);
    try {
      const [phone, tablet] = [await login(a.url, "ola"), await login(b.url, "ola")];
      assert.equal(await register(a.url, phone.token, "fcm", "ola-android"), 201);
      assert.equal(await register(b.url, tablet.token, "apns", "ola-ipad"), 201);
      for (let i = 0; i < 3; i++) {
        const id = await place(b.url, phone.token, "AAPL", "1");
        await report(i % 2 ? a.url : b.url, id, { type: "fill", last_qty: "1", last_price: "190" });
      }
      const total = async (series: string) =>
        (await metric(a.url, series)) + (await metric(b.url, series));
      // On NOTIFY both instances hear every event; each is claimed once, by one of them. On the
      // bus only the instance that wrote it does (neither serves a stream of this user).
      const elsewhere = TEST_BUS_URL ? 0 : 3;
      await eventually(async () =>
        (await total(`blotter_push_events_total{outcome="claimed"}`)) === 3 &&
        (await total(`blotter_push_events_total{outcome="claimed_elsewhere"}`)) === elsewhere
      );
      await eventually(async () =>
        (await total(sent("fcm"))) === 3 && (await total(sent("apns"))) === 3
      );
      assert.equal(svc.fcm.forToken("ola-android").length, 3);
      assert.equal(svc.apns.forToken("ola-ipad").length, 3);
      assert.deepEqual(svc.fcm.problems, []);
      assert.deepEqual(svc.apns.problems, []);
    } finally {
      await a.stop();
      await b.stop();
      await svc.stop();
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name: "native push: start-up refuses a half-configured platform, naming what is missing",
  async fn() {
    const err = await spawnServer({
      AUTH_MODE: "dev",
      KV_PATH: ":memory:",
      FCM_PROJECT_ID: "blotter-prod",
      APNS_KEY_ID: "ABC123DEFG",
      APNS_TOPIC: "com.example.blotter",
      PORT: "not-a-port",
    }).then(() => null, (e: Error) => e);
    assert.ok(err, "the server must not start");
    assert.match(err.message, /server exited \(1\)/);
    assert.match(err.message, /FCM: .*FCM_SERVICE_ACCOUNT or FCM_SERVICE_ACCOUNT_FILE/);
    assert.match(err.message, /APNs: .*APNS_TEAM_ID, APNS_KEY or APNS_KEY_FILE/);
    assert.match(err.message, /PORT/, "reported together with every other bad setting");
  },
});
