/**
 * The client library (client/src) against a real Blotter, for each transport: the view ends equal
 * to the server's list through a server killed and restarted while reports flow, with no event
 * applied twice; a connection that goes silent (a proxy that stops forwarding) is dropped within
 * three heartbeats and reopened; the background closes the live connection and the foreground
 * catches up; expiring credentials are refreshed; a revoked session closes the client. And the
 * built package stays small.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { sign } from "hono/utils/jwt/jwt";
import { BlotterClient, type ClientState, type Order } from "../../client/src/index.ts";
import { fakePushService } from "../fakes/web_push_fake.ts";
import {
  api,
  eventually,
  freePort,
  INGEST_TOKEN,
  login,
  spawnServer,
  SseClient,
} from "../helpers.ts";

type Server = Awaited<ReturnType<typeof spawnServer>>;
const TRANSPORTS = ["websocket", "sse", "polling"] as const;

/** A Blotter process on a fixed port with its own KV file, so it can be stopped and started. */
async function blotterAt(port: number, kvPath: string, env: Record<string, string> = {}) {
  return await spawnServer({
    AUTH_MODE: "dev",
    KV_PATH: kvPath,
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    HEARTBEAT_MS: "500",
    ...env,
    PORT: String(port),
  });
}

/** What the client's view must end equal to: the server's list, as status and fills. */
async function serverView(url: string, token: string): Promise<string[]> {
  const res = await api(url, token, "GET", "/api/v1/orders?status=all&limit=200");
  return summary(res.json.orders);
}

function summary(orders: Order[]): string[] {
  return orders.map((o) => `${o.id} ${o.status} ${o.filled_qty}`).sort();
}

/** Watches a client: every event it applied (never one twice) and its states. */
function watch(client: BlotterClient) {
  const applied: number[] = [];
  const states: ClientState[] = [];
  client.on("order", (_o, e) => {
    if (e) {
      assert.ok(!applied.includes(e.seq), `seq ${e.seq} applied twice`);
      applied.push(e.seq);
    }
  });
  client.on("state", (s) => states.push(s));
  return { applied, states };
}

async function report(url: string, orderId: string, execId: string, type = "partial_fill") {
  return await api(url, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: orderId,
    exec_id: execId,
    type,
    at: new Date().toISOString(),
    ...(type === "partial_fill" ? { last_qty: "1", last_price: "187.41" } : {}),
  }).catch(() => ({ status: 0 }));
}

for (const transport of TRANSPORTS) {
  Deno.test(`client (${transport}): a server restart while reports flow: the view ends exact`, async () => {
    const dir = await Deno.makeTempDir();
    const port = freePort();
    let server: Server = await blotterAt(port, `${dir}/blotter.kv`);
    const url = server.url;
    const { token } = await login(url, "cleo");
    const client = new BlotterClient({ baseUrl: url, token, transport });
    const seen = watch(client);
    try {
      const placed = await api(url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "100000",
      });
      await report(url, placed.json.id, "c-new", "new");
      await client.start();
      let n = 0;
      const send = async (count: number) => {
        for (let i = 0; i < count; i++) await report(url, placed.json.id, `c-${n++}`);
      };
      await send(20);
      await server.stop();
      server = await blotterAt(port, `${dir}/blotter.kv`);
      await send(20);
      await eventually(
        async () =>
          JSON.stringify(summary(client.orders())) === JSON.stringify(await serverView(url, token)),
        20_000,
      );
      assert.equal(client.order(placed.json.id)?.filled_qty, "40");
      if (transport !== "polling") {
        await eventually(() => client.state === "live", 15_000);
        assert.ok(seen.applied.length > 0, "no event was applied live");
      } else assert.equal(client.state, "polling");
    } finally {
      await client.stop();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** A TCP proxy that can stop forwarding without closing anything: a zombie connection. */
function proxyTo(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const links: Array<{ frozen: boolean }> = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn, stuck: () => boolean) => {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (!stuck()) await to.write(buf.subarray(0, n));
      }
    } catch { /* closed */ }
  };
  const serving = (async () => {
    for await (const conn of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn, upstream);
      const mine = { frozen: false };
      links.push(mine);
      const stuck = () => mine.frozen;
      pipe(conn, upstream, stuck);
      pipe(upstream, conn, stuck);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** The connections open now go silent both ways; new ones work. */
    freeze() {
      for (const link of links) link.frozen = true;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

for (const transport of ["websocket", "sse"] as const) {
  Deno.test(`client (${transport}): a silent connection is dropped within three heartbeats`, async () => {
    const dir = await Deno.makeTempDir();
    const server = await blotterAt(freePort(), `${dir}/blotter.kv`);
    const proxy = proxyTo(Number(new URL(server.url).port));
    const { token } = await login(server.url, "zed");
    const client = new BlotterClient({
      baseUrl: `http://127.0.0.1:${proxy.port}`,
      token,
      transport,
    });
    const seen = watch(client);
    try {
      await client.start();
      await eventually(() => client.state === "live");
      proxy.freeze(); // pings stop arriving; nothing is closed
      const placed = await api(server.url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "5",
      });
      // 3 × 500 ms of silence, then a new connection: the order arrives through it.
      await eventually(() => client.order(placed.json.id) !== undefined, 10_000);
      assert.ok(seen.states.includes("reconnecting"), `states: ${seen.states}`);
      await eventually(() => client.state === "live");
    } finally {
      await client.stop();
      await proxy.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (const transport of TRANSPORTS) {
  Deno.test(`client (${transport}): background closes the live connection; foreground catches up`, async () => {
    const dir = await Deno.makeTempDir();
    const server = await blotterAt(freePort(), `${dir}/blotter.kv`);
    const { token } = await login(server.url, "bo");
    const client = new BlotterClient({ baseUrl: server.url, token, transport });
    const live = transport === "polling" ? "polling" : "live";
    try {
      await client.start();
      await eventually(() => client.state === live);
      client.setForeground(false);
      assert.equal(client.state, "paused");
      const placed = await api(server.url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "5",
      });
      await report(server.url, placed.json.id, "b-1", "new");
      assert.equal(client.order(placed.json.id), undefined, "a paused client received events");
      client.setForeground(true);
      await eventually(() => client.order(placed.json.id)?.status === "new");
      await eventually(() => client.state === live);
    } finally {
      await client.stop();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/**
 * A fetch for the client that can hold its list reads: `hold` resolves once the next one is
 * waiting; `release` lets it through and resolves once it has been answered and handed back.
 */
class HeldListReads {
  #gate: PromiseWithResolvers<void> | null = null;
  #asked = 0;
  #answered = 0;

  readonly fetch: typeof fetch = async (input, init) => {
    if (!String(input).includes("/api/v1/orders")) return await fetch(input, init);
    this.#asked++;
    const gate = this.#gate;
    if (gate) await gate.promise;
    const res = await fetch(input, init);
    if (gate) this.#answered++;
    return res;
  };

  async hold(): Promise<void> {
    this.#gate = Promise.withResolvers();
    const before = this.#asked;
    await eventually(() => this.#asked > before, 10_000);
  }

  async release(): Promise<void> {
    const gate = this.#gate!;
    this.#gate = null;
    const before = this.#answered;
    gate.resolve();
    await eventually(() => this.#answered > before);
    await new Promise((r) => setTimeout(r, 200)); // its body read and handed to the client
  }
}

Deno.test("client (polling): a poll answered after the app went to the background is not applied", async () => {
  const dir = await Deno.makeTempDir();
  const server = await blotterAt(freePort(), `${dir}/blotter.kv`);
  const { token } = await login(server.url, "bea");
  // A poll is in flight when the app is paused, and the server reads the list only after the
  // order below exists (what a slow box did in CI).
  const reads = new HeldListReads();
  const client = new BlotterClient({
    baseUrl: server.url,
    token,
    transport: "polling",
    fetch: reads.fetch,
  });
  try {
    await client.start();
    await eventually(() => client.state === "polling");
    await reads.hold(); // the next poll is waiting
    client.setForeground(false);
    const placed = await api(server.url, token, "POST", "/api/v1/orders", {
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "5",
    });
    await reads.release();
    assert.equal(client.order(placed.json.id), undefined, "a paused client applied a poll");
    assert.equal(client.state, "paused");
    client.setForeground(true);
    await eventually(() => client.order(placed.json.id) !== undefined);
  } finally {
    await client.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: a reload (the server's reset) answered after the app went to the background is not applied", async () => {
  const dir = await Deno.makeTempDir();
  const server = await blotterAt(freePort(), `${dir}/blotter.kv`);
  const { token } = await login(server.url, "bel");
  // A kept view ahead of the server's log: the stream answers with a reset, and the client
  // reloads the list, which is held across the pause (as in the poll test above).
  const storage = { get: () => JSON.stringify({ orders: [], lastEventId: "5" }), set: () => {} };
  const reads = new HeldListReads();
  const reloads: string[] = [];
  const client = new BlotterClient({
    baseUrl: server.url,
    token,
    transport: "sse",
    fetch: reads.fetch,
    storage,
  });
  client.on("reload", (why) => void reloads.push(why));
  try {
    const reload = reads.hold();
    await client.start();
    await reload; // the reset's reload is waiting
    client.setForeground(false);
    const placed = await api(server.url, token, "POST", "/api/v1/orders", {
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "5",
    });
    await reads.release();
    assert.equal(client.order(placed.json.id), undefined, "a paused client applied a reload");
    assert.equal(client.state, "paused");
    client.setForeground(true);
    await eventually(() => client.order(placed.json.id) !== undefined);
    await eventually(() => client.state === "live");
    assert.ok(reloads.length > 0, "back in the foreground, the reset's reload was not made");
  } finally {
    await client.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

const SECRET = "a-shared-secret-of-at-least-32-characters!";

for (const transport of ["websocket", "sse"] as const) {
  Deno.test(`client (${transport}): expiring credentials are refreshed; a revoked session closes it`, async () => {
    const dir = await Deno.makeTempDir();
    const server = await blotterAt(freePort(), `${dir}/blotter.kv`, {
      AUTH_MODE: "jwt",
      AUTH_JWT_SECRET: SECRET,
      AUTH_SERVICE_TOKEN: "auth-service-token-0123456789abcdef",
    });
    let asked = 0;
    const token = () => {
      asked++;
      return sign({ sub: "vi", sid: "phone", exp: Math.floor(Date.now() / 1000) + 3 }, SECRET);
    };
    const client = new BlotterClient({ baseUrl: server.url, token, transport });
    try {
      await client.start();
      await eventually(() => client.state === "live");
      const first = asked;
      // Past the first token's expiry, the socket is still open on refreshed credentials; a
      // stream cannot take new ones in place, so it reconnects with them (and is live again).
      await eventually(() => asked > first + 1, 10_000);
      if (transport === "websocket") assert.equal(client.state, "live");
      else await eventually(() => client.state === "live");
      const now = await token();
      const placed = await api(server.url, now, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "5",
      });
      await eventually(() => client.order(placed.json.id) !== undefined);
      // The auth service revokes the device session: the client closes, with the error to show.
      const res = await fetch(`${server.url}/api/v1/sessions/phone`, {
        method: "DELETE",
        headers: { authorization: "Bearer auth-service-token-0123456789abcdef" },
      });
      await res.body?.cancel();
      assert.equal(res.status, 204);
      await eventually(() => client.state === "closed", 10_000);
    } finally {
      await client.stop();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("client: the built package is an npm package of at most 10 KB gzipped", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "client:build"],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const dist = new URL("../../client/dist/", import.meta.url);
  const pkg = JSON.parse(await Deno.readTextFile(new URL("package.json", dist)));
  assert.equal(pkg.type, "module");
  assert.equal(pkg.exports["."].import, "./index.js");
  assert.equal(pkg.exports["."].types, "./index.d.ts");
  assert.equal(pkg.dependencies, undefined);
  const types = await Deno.readTextFile(new URL("index.d.ts", dist));
  assert.match(types, /export declare class BlotterClient/);
  const js = await Deno.readFile(new URL("index.js", dist));
  assert.ok(!/\bimport\s*[\w{*]/.test(new TextDecoder().decode(js)), "index.js imports something");
  const gz = gzipSync(js, { level: 9 });
  assert.ok(gz.byteLength <= 10 * 1024, `index.js is ${gz.byteLength} bytes gzipped (level 9)`);
  // It runs: the built module makes a client.
  const mod = await import(new URL("index.js", dist).href);
  assert.equal(typeof new mod.BlotterClient({ baseUrl: "http://127.0.0.1:9" }).start, "function");
});

for (const transport of ["websocket", "sse"] as const) {
  Deno.test(`client (${transport}): a history lost and grown again reloads with history`, async () => {
    const dir = await Deno.makeTempDir();
    const port = freePort();
    const kv = `${dir}/blotter.kv`;
    let server: Server = await blotterAt(port, kv);
    const url = server.url;
    const { token } = await login(url, "hal");
    const client = new BlotterClient({ baseUrl: url, token, transport });
    const reloads: string[] = [];
    client.on("reload", (why) => reloads.push(why));
    try {
      const placed = await api(url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "100",
      });
      const orderId = placed.json.id;
      await report(url, orderId, "h-new", "new");
      await client.start();
      await eventually(() => client.state === "live");
      // The store as it is now is kept; the client then sees events the kept copy does not have.
      await server.stop();
      for (const f of [kv, `${kv}-wal`, `${kv}-shm`]) {
        await Deno.copyFile(f, `${f}.kept`).catch(() => {});
      }
      server = await blotterAt(port, kv);
      for (let i = 0; i < 3; i++) await report(url, orderId, `h-lost-${i}`);
      await eventually(() => client.order(orderId)?.filled_qty === "3", 15_000);
      // The store is put back: those events are gone, and new ones grow under the same seqs.
      await server.stop();
      for (const f of [kv, `${kv}-wal`, `${kv}-shm`]) {
        await Deno.remove(f).catch(() => {});
        await Deno.rename(`${f}.kept`, f).catch(() => {});
      }
      server = await blotterAt(port, kv);
      for (let i = 0; i < 5; i++) await report(url, orderId, `h-new-${i}`);
      await eventually(
        async () =>
          JSON.stringify(summary(client.orders())) === JSON.stringify(await serverView(url, token)),
        20_000,
      );
      assert.equal(client.order(orderId)?.filled_qty, "5");
      assert.ok(reloads.includes("history"), `reloads: ${reloads}`);
    } finally {
      await client.stop();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("client: over the user's cap it keeps trying with backoff, and is live once there is room", async () => {
  const dir = await Deno.makeTempDir();
  const server = await blotterAt(freePort(), `${dir}/blotter.kv`, { MAX_STREAMS_PER_USER: "1" });
  const { token } = await login(server.url, "cap");
  const held = await SseClient.open(`${server.url}/api/v1/stream`, {
    authorization: `Bearer ${token}`,
  });
  const client = new BlotterClient({ baseUrl: server.url, token, transport: "websocket" });
  const seen = watch(client);
  try {
    await client.start();
    await eventually(() => seen.states.includes("reconnecting"));
    assert.notEqual(client.state, "live");
    held.close(); // room again: the next try gets in
    await eventually(() => client.state === "live", 15_000);
  } finally {
    held.close();
    await client.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: in the background push alerts reach the device; in the foreground none do", async () => {
  const push = fakePushService(() => 201);
  const dir = await Deno.makeTempDir();
  const server = await blotterAt(freePort(), `${dir}/blotter.kv`, {
    PUSH_ENDPOINT_ALLOW: push.origin,
  });
  const { token } = await login(server.url, "pat");
  const client = new BlotterClient({ baseUrl: server.url, token, transport: "websocket" });
  try {
    const { key } = await (await fetch(`${server.url}/api/v1/push/vapid-public-key`)).json();
    push.setVapidKey(key);
    await client.registerWebPush(push.subscription("/sub/pat"));
    await client.start();
    await eventually(() => client.state === "live");
    const placed = await client.place({
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "5",
    });
    await report(server.url, placed.id, "pp-1", "new");
    await report(server.url, placed.id, "pp-2"); // a fill: alert-worthy, but the socket is open
    await eventually(() => client.order(placed.id)?.filled_qty === "1");
    // The dispatcher looks at who is watching when it takes the event up: let it, before going.
    await eventually(async () =>
      /blotter_push_events_total\{outcome="no_target"\} 1/.test(
        await (await fetch(`${server.url}/metrics`)).text(),
      )
    );
    client.setForeground(false);
    // The server learns the socket closed a moment later: only then is the device in the background.
    await eventually(async () =>
      /^blotter_open_streams 0$/m.test(await (await fetch(`${server.url}/metrics`)).text())
    );
    await report(server.url, placed.id, "pp-3");
    await eventually(() => push.received.length === 1, 10_000);
    assert.ok(push.received[0].vapidOk, "the alert's VAPID signature did not verify");
    assert.equal(push.received[0].payload.order_id, placed.id);
    client.setForeground(true);
    await eventually(() => client.order(placed.id)?.filled_qty === "2");
    assert.equal(push.received.length, 1, "an alert reached a device whose socket was open");
  } finally {
    await client.stop();
    await server.stop();
    await push.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: order actions are idempotent and refusals are typed; a stored view starts at once", async () => {
  const dir = await Deno.makeTempDir();
  const server = await blotterAt(freePort(), `${dir}/blotter.kv`);
  const { token } = await login(server.url, "ida");
  let kept: string | null = null;
  const storage = { get: () => kept, set: (v: string) => void (kept = v) };
  const first = new BlotterClient({ baseUrl: server.url, token, storage });
  let second: BlotterClient | undefined;
  try {
    await first.start();
    const request = {
      symbol: "AAPL",
      asset_class: "stock" as const,
      side: "buy" as const,
      qty: "5",
      client_order_id: "ticket-42",
    };
    const placed = await first.place(request);
    assert.equal((await first.place(request)).id, placed.id, "the same client_order_id twice");
    await report(server.url, placed.id, "i-1", "new");
    await eventually(() => first.order(placed.id)?.status === "new");
    const refused = await first.cancel("01a25014-0000-7000-8000-000000000000").catch((e) => e);
    assert.equal(refused.name, "BlotterError");
    assert.equal(refused.status, 404);
    assert.equal(refused.code, "not_found");
    await eventually(() => kept !== null && JSON.parse(kept).lastEventId === first.lastEventId);
    await first.stop();
    // A cold start: the stored view at once, then live from where it stopped.
    await report(server.url, placed.id, "i-2");
    second = new BlotterClient({ baseUrl: server.url, token, storage });
    const shown: string[] = [];
    second.on("order", (o) => shown.push(o.status));
    await second.start();
    assert.equal(second.order(placed.id)?.status, "new", "the stored view was not shown first");
    await eventually(() => second!.order(placed.id)?.filled_qty === "1");
    assert.deepEqual(shown.slice(0, 1), ["new"]);
  } finally {
    await first.stop();
    await second?.stop();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: a proxy's error page and a lost network are typed refusals too", async () => {
  const proxy502 = (() =>
    Promise.resolve(
      new Response("<html>Bad gateway</html>", { status: 502, headers: { "retry-after": "7" } }),
    )) as typeof fetch;
  const a = new BlotterClient({ baseUrl: "http://blotter.test", token: "t", fetch: proxy502 });
  const refused = await a.cancel("x").catch((e) => e);
  assert.equal(refused.name, "BlotterError");
  assert.equal(refused.status, 502);
  assert.equal(refused.retryAfter, 7);
  let sent = 0;
  const offline = (() => (sent++, Promise.reject(new TypeError("network down")))) as typeof fetch;
  const b = new BlotterClient({ baseUrl: "http://blotter.test", token: "t", fetch: offline });
  const lost = await b.place({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1" })
    .catch((e) => e);
  assert.equal(lost.name, "BlotterError");
  assert.equal(lost.status, 0);
  assert.equal(sent, 2, "a placement lost to the network is sent once more, with the same id");
});
