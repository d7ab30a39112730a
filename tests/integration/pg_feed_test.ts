/**
 * Postgres end to end: streams fed by LISTEN/NOTIFY across two instances, no event lost when the
 * listener's backend is killed mid-stream, the ids-only NOTIFY path, and the SQL inbox.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { silentLogger } from "../../log.ts";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openPgStore } from "../../store/pg/mod.ts";
import {
  api,
  eventually,
  INGEST_TOKEN,
  login,
  SseClient,
  startServer,
  statusOf,
} from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { TEST_BUS_URL } from "../nats_helper.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1000" };

function t(name: string, fn: (schema: string) => Promise<void>) {
  Deno.test({
    name: `postgres feed: ${name}`,
    ignore: NO_POSTGRES,
    async fn() {
      const schema = freshSchema();
      try {
        await fn(schema);
      } finally {
        await dropSchema(schema);
      }
    },
  });
}

/**
 * A test of the LISTEN/NOTIFY carrier itself (its connection killed, its payload limit): it runs
 * in the main pass, and not in the bus pass, where the bus carries the feed (bus_test.ts there).
 */
function notifyOnly(name: string, fn: (schema: string) => Promise<void>) {
  if (!TEST_BUS_URL) t(name, fn);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const fill = (orderId: string, i: number) => ({
  order_id: orderId,
  exec_id: `f-${i}`,
  type: "partial_fill",
  at: new Date().toISOString(),
  last_qty: "1",
  last_price: "10.5",
});

t("an event written on one instance reaches a stream on another", async (schema) => {
  const env = { DATABASE_URL, DATABASE_SCHEMA: schema };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const { token } = await login(a.url, "ivy");
    // The session lives in Postgres: instance B knows the token A issued.
    const stream = await SseClient.open(`${b.url}/api/v1/stream`, bearer(token));
    assert.equal(stream.status, 200);
    const placed = await api(a.url, token, "POST", "/api/v1/orders", ORDER);
    await stream.until((c) => c.orders().length === 1);
    assert.equal(stream.orders()[0].order.id, placed.json.id);
    const ready = await (await fetch(`${b.url}/readyz`)).json();
    assert.equal(ready.store, "postgres");
    stream.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});

notifyOnly(
  "killing the LISTEN connection loses nothing: degraded, caught up, ok",
  async (schema) => {
    const s = await startServer({ DATABASE_URL, DATABASE_SCHEMA: schema });
    const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const { token } = await login(s.url, "jon");
      const { json: order } = await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: order.id,
        exec_id: "new",
        type: "new",
        at: new Date().toISOString(),
      });
      const stream = await SseClient.open(`${s.url}/api/v1/stream`, {
        ...bearer(token),
        "last-event-id": "0",
      });
      await stream.until((c) => c.orders().length === 2);
      let written = 0;
      const writer = (async () => {
        for (let i = 0; i < 150; i++) {
          const r = await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", fill(order.id, i));
          if (r.status === 201) written++;
          if (i === 40 || i === 90) {
            await admin`
            select pg_terminate_backend(pid) from pg_stat_activity
            where query ilike 'listen%' and application_name = 'blotter'
              and pid <> pg_backend_pid()`;
          }
        }
      })();
      await writer;
      assert.equal(written, 150);
      await stream.until((c) => c.orders().length === 152, 15_000);
      assert.deepEqual(
        stream.orders().map((e) => e.seq),
        Array.from({ length: 152 }, (_, i) => i + 1),
      );
      const statuses = stream.messages.filter((m) => m.event === "status").map((m) =>
        JSON.parse(m.data).realtime
      );
      assert.ok(statuses.includes("degraded"), `statuses: ${statuses}`);
      await eventually(async () => (await statusOf(`${s.url}/readyz`)) === 200);
      stream.close();
    } finally {
      await admin.end();
      await s.stop();
    }
  },
);

notifyOnly("a payload too big for NOTIFY travels as ids and is fetched", async (schema) => {
  const store = await openPgStore(DATABASE_URL, { log: silentLogger, schema, maxNotifyBytes: 100 });
  try {
    const heard: number[] = [];
    store.changes.subscribe({
      events: (batch) => batch.forEach((u) => heard.push(u.event.seq)),
      sessionRevoked() {},
      connected() {},
      disconnected() {},
    });
    const placed = await store.placeOrder("kim", OrderRequest.parse(ORDER), new Date());
    await store.applyReport(
      ExecutionReport.parse({
        order_id: placed.order.id,
        exec_id: "e1",
        type: "new",
        at: new Date().toISOString(),
      }),
      new Date(),
    );
    await eventually(() => heard.length === 2);
    assert.deepEqual(heard, [1, 2]);
  } finally {
    await store.close();
  }
});

t("plain SQL into execution_inbox is validated and applied like the API", async (schema) => {
  const store = await openPgStore(DATABASE_URL, { log: silentLogger, schema });
  const sql = postgres(DATABASE_URL, {
    max: 1,
    onnotice: () => {},
    connection: { search_path: schema },
  });
  try {
    const placed = await store.placeOrder(
      "lou",
      OrderRequest.parse({ ...ORDER, qty: "5" }),
      new Date(),
    );
    const at = new Date().toISOString();
    const good = { order_id: placed.order.id, exec_id: "sql-1", type: "new", at };
    const rows = await sql`
      insert into execution_inbox (report) values
        (${sql.json(good)}), (${sql.json(good)}),
        (${sql.json({ ...good, exec_id: "sql-2", type: "fill", last_qty: "9", last_price: "1" })}),
        (${sql.json({ order_id: "nope" })})
      returning id`;
    const answered = await eventually(async () => {
      const r = await sql<{ result_status: number }[]>`
        select result_status from execution_inbox where id = any(${
        rows.map((r) => r.id)
      }) order by id`;
      return r.every((x) => x.result_status !== null) ? r.map((x) => x.result_status) : undefined;
    });
    assert.deepEqual(answered, [201, 200, 409, 400]);
    assert.equal((await store.getOrder("lou", placed.order.id))?.status, "new");
  } finally {
    await sql.end();
    await store.close();
  }
});

/** The machine's Postgres cluster version (Debian layout), for pg_ctlcluster. */
const pgVersion = () => [...Deno.readDirSync("/etc/postgresql")][0].name;

/** Restarts the machine's Postgres (the CI machine's own cluster; PG_RESTART overrides). */
async function restartPostgres(): Promise<void> {
  const custom = Deno.env.get("PG_RESTART");
  const [cmd, ...args] = custom
    ? custom.split(" ")
    : ["pg_ctlcluster", "--skip-systemctl-redirect", pgVersion(), "main", "restart", "-m", "fast"];
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`restarting Postgres failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes sure the cluster runs again whatever happened in the test: later tests need it. */
async function ensurePostgresRuns(): Promise<void> {
  if (Deno.env.get("PG_RESTART")) return;
  await new Deno.Command("pg_ctlcluster", {
    args: ["--skip-systemctl-redirect", pgVersion(), "main", "start"],
    stdout: "null",
    stderr: "null",
  }).output();
}

t(
  "a Postgres restart while reports flow: every event once, in order; readiness 503 then 200",
  async (schema) => {
    const s = await startServer({ DATABASE_URL, DATABASE_SCHEMA: schema });
    try {
      const { token } = await login(s.url, "max");
      const { json: order } = await api(s.url, token, "POST", "/api/v1/orders", ORDER);
      const stream = await SseClient.open(`${s.url}/api/v1/stream`, {
        ...bearer(token),
        "last-event-id": "0",
      });
      await stream.until((c) => c.orders().length === 1);
      // Readiness, sampled throughout.
      const readiness = new Set<number>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const r = await fetch(`${s.url}/readyz`).catch(() => null);
          if (r) {
            readiness.add(r.status);
            await r.body?.cancel();
          }
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      // A backend's writer: every report is retried with the same exec_id until it is answered
      // 201 or 200 (a duplicate), as CONTRACT.md tells ingest clients to do on 503.
      const send = async (body: Record<string, unknown>) => {
        for (let attempt = 0; attempt < 400; attempt++) {
          const r = await api(s.url, INGEST_TOKEN, "POST", "/api/v1/executions", body)
            .catch(() => ({ status: 0 }));
          if (r.status === 201 || r.status === 200) return;
          assert.ok(r.status === 503 || r.status === 0, `unexpected ${r.status}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error("a report was never accepted");
      };
      await send({ order_id: order.id, exec_id: "new", type: "new", at: new Date().toISOString() });
      const writer = (async () => {
        for (let i = 0; i < 120; i++) await send(fill(order.id, i));
      })();
      await stream.until((c) => c.orders().length >= 20);
      await restartPostgres();
      await writer;
      await stream.until((c) => c.orders().length >= 122, 30_000);
      // Exactly once, in order: seqs 1..122 with nothing missing or repeated.
      assert.deepEqual(
        stream.orders().map((e) => e.seq),
        Array.from({ length: 122 }, (_, i) => i + 1),
      );
      assert.equal(stream.orders().at(-1)!.order.status, "partially_filled");
      await eventually(async () => (await statusOf(`${s.url}/readyz`)) === 200, 20_000);
      sampling = false;
      await sampler;
      assert.ok(readiness.has(503), `readiness seen: ${[...readiness]}`);
      const statuses = stream.messages.filter((m) => m.event === "status").map((m) =>
        JSON.parse(m.data).realtime
      );
      if (TEST_BUS_URL) {
        // The bus carries the feed and stayed up: nothing committed was missed, nothing to say.
        assert.ok(!statuses.includes("degraded"), `statuses: ${statuses}`);
      } else {
        // The LISTEN connection went down with Postgres: degraded, then caught up.
        assert.ok(
          statuses.includes("degraded") && statuses.at(-1) === "ok",
          `statuses: ${statuses}`,
        );
      }
      stream.close();
    } finally {
      await ensurePostgresRuns();
      await s.stop();
    }
  },
);

t(
  "a push subscription changed on one instance is seen by the other's next lookup",
  async (schema) => {
    // Each instance caches whom to alert per user; the change must reach the other through NOTIFY.
    const options = { log: silentLogger, schema, max: 2, eventBusUrl: TEST_BUS_URL };
    const a = await openPgStore(DATABASE_URL, options);
    const b = await openPgStore(DATABASE_URL, options);
    try {
      const session = await b.createSession({
        id: crypto.randomUUID(),
        user_id: "kai",
        label: "phone",
        created_at: new Date().toISOString(),
      }, `h-${crypto.randomUUID()}`);
      const sub = {
        endpoint: `https://push.example/${crypto.randomUUID()}`,
        keys: { p256dh: "p", auth: "a" },
        user_id: "kai",
        session_id: session.id,
        created_at: new Date().toISOString(),
      };
      const onA = async () => (await a.listPushSubscriptions("kai")).map((s) => s.endpoint);
      assert.deepEqual(await onA(), []); // A now holds "nobody" for kai
      await b.addPushSubscription(sub);
      await eventually(async () => (await onA()).length === 1);
      await b.removePushSubscription("kai", sub.endpoint);
      await eventually(async () => (await onA()).length === 0);
      await b.addPushSubscription(sub);
      await eventually(async () => (await onA()).length === 1);
      await b.removePushSubscriptionByEndpoint(sub.endpoint); // as after a 410 from the service
      await eventually(async () => (await onA()).length === 0);
      await b.addPushSubscription(sub);
      await eventually(async () => (await onA()).length === 1);
      await b.revokeSession("kai", session.id, new Date()); // signing the device out drops it
      await eventually(async () => (await onA()).length === 0);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

t(
  "a device token registered, moved or revoked on one instance is seen by the other's next lookup",
  async (schema) => {
    // The alert-target cache holds native tokens too; every change must reach the other instance.
    const options = { log: silentLogger, schema, max: 2, eventBusUrl: TEST_BUS_URL };
    const a = await openPgStore(DATABASE_URL, options);
    const b = await openPgStore(DATABASE_URL, options);
    try {
      const session = (user: string) =>
        b.createSession({
          id: crypto.randomUUID(),
          user_id: user,
          label: "phone",
          created_at: new Date().toISOString(),
        }, `h-${crypto.randomUUID()}`);
      const [mia, ned] = [await session("mia"), await session("ned")];
      const device = {
        token: `apns-${crypto.randomUUID()}`,
        platform: "apns" as const,
        user_id: "mia",
        session_id: mia.id,
        created_at: new Date().toISOString(),
      };
      const onA = async (user: string) => (await a.listPushDevices(user)).length;
      assert.equal(await onA("mia"), 0); // A now holds "nobody" for mia
      assert.equal(await onA("ned"), 0);
      assert.equal(await b.addPushDevice(device), "created");
      await eventually(async () => (await onA("mia")) === 1);
      assert.equal(
        await b.addPushDevice({ ...device, user_id: "ned", session_id: ned.id }),
        "moved",
      );
      await eventually(async () => (await onA("mia")) === 0 && (await onA("ned")) === 1);
      await b.revokeSession(null, ned.id, new Date()); // the auth service signs ned's phone out
      await eventually(async () => (await onA("ned")) === 0);
      assert.equal(await b.addPushDevice(device), "created");
      await eventually(async () => (await onA("mia")) === 1);
      await b.removePushDeviceByToken(device.token); // as after a 410 from APNs
      await eventually(async () => (await onA("mia")) === 0);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

notifyOnly(
  "a push subscription added while an instance's feed is down is seen once it is back",
  async (schema) => {
    // The NOTIFY is missed; the instance must not go on trusting what it cached before.
    const a = await openPgStore(DATABASE_URL, { log: silentLogger, schema, max: 2 });
    const b = await openPgStore(DATABASE_URL, { log: silentLogger, schema, max: 2 });
    const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const sub = {
        endpoint: `https://push.example/${crypto.randomUUID()}`,
        keys: { p256dh: "p", auth: "a" },
        user_id: "lou",
        session_id: "s",
        created_at: new Date().toISOString(),
      };
      assert.deepEqual(await a.listPushSubscriptions("lou"), []); // cached: nobody
      await admin`
      select pg_terminate_backend(pid) from pg_stat_activity
      where query ilike ${`listen "blotter_inbox:${schema}"%`} and pid <> pg_backend_pid()`;
      await eventually(() => !a.changes.connected);
      await b.addPushSubscription(sub); // A hears nothing of this
      assert.equal(
        (await a.listPushSubscriptions("lou")).length,
        1,
        "while down: asks the database",
      );
      await eventually(() => a.changes.connected, 15_000);
      assert.equal((await a.listPushSubscriptions("lou")).length, 1, "back: not the old answer");
    } finally {
      await admin.end();
      await a.close();
      await b.close();
    }
  },
);
