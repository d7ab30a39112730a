/**
 * One connection too many must not take the service down. The server runs under a low open-file
 * limit, as a host's ulimit would start it (`prlimit --nofile=256:256`), on each server adapter; a
 * crowd opens more streams than it allows, then more silent sockets than it has descriptors for.
 * The process lives; an earlier trader's stream gets every event meanwhile; `/healthz` and the
 * order routes answer during the stream flood; the overflow streams get a 503 with Retry-After
 * and `Connection: close`, not silence; silent sockets are shed while the crowd still holds them;
 * once the crowd is gone, sign-ins, orders and streams work with no restart.
 */
import assert from "node:assert/strict";
import {
  api,
  eventually,
  INGEST_TOKEN,
  type Json,
  login,
  type ServerProcess,
  spawnServer,
  SseClient,
} from "../helpers.ts";

/** The open-file limit the server runs under. */
const NOFILE = 256;
/** Streams the crowd asks for: more than the cap this limit derives (server/descriptors.ts: 132). */
const CROWD_STREAMS = 160;
/** Silent sockets the crowd opens: more than the descriptors the server has left. */
const SILENT_SOCKETS = 400;

const encoder = new TextEncoder();

/** A raw connection that asked for a stream, with the status and headers it got. */
interface RawStream {
  conn: Deno.TcpConn;
  status: number;
  headers: Map<string, string>;
}

/** Opens a stream over a raw socket and reads the response head (one connection per stream). */
async function openRawStream(port: number, token: string): Promise<RawStream> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    `GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`,
  ));
  let head = "";
  const buf = new Uint8Array(4096);
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  const [statusLine, ...lines] = head.split("\r\n\r\n")[0].split("\r\n");
  const headers = new Map(lines.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()] as [string, string];
  }));
  return { conn, status: Number(statusLine.split(" ")[1] ?? 0), headers };
}

/** Whether the server closes `conn` (reads until EOF, within `ms`). */
async function closedByServer(conn: Deno.TcpConn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while ((await conn.read(buf)) !== null) { /* the rest of the 503's body */ }
    return true;
  } catch {
    return false; // closed by us: the timer ran out
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** One fetch that gives up after `ms` (a server out of descriptors may not answer at all). */
async function tryFetch(url: string, init: RequestInit = {}, ms = 3_000) {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
    const text = await res.text();
    return { status: res.status, text };
  } catch {
    return { status: 0, text: "" };
  }
}

/**
 * Runs an idempotent request again when the connection, not the server, failed: shedding closes
 * connections with no request in progress, and a pooled keep-alive socket can be closed just as
 * a request goes out on it. A venue resends with the same exec_id, an app with the same
 * client_order_id; so does this.
 */
async function resent<T>(request: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (!(err instanceof TypeError) || attempt === 5) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function postReport(url: string, report: Record<string, string>) {
  const { status } = await resent(() =>
    api(url, INGEST_TOKEN, "POST", "/api/v1/executions", report)
  );
  assert.ok(status === 201 || status === 200, `report ${report.exec_id} answered ${status}`);
}

async function placeOrder(url: string, token: string): Promise<string> {
  const clientOrderId = crypto.randomUUID();
  const placed = await resent(() =>
    api(url, token, "POST", "/api/v1/orders", {
      client_order_id: clientOrderId,
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "1000",
    })
  );
  assert.ok(placed.status === 201 || placed.status === 200, `order answered ${placed.status}`);
  return placed.json.id;
}

async function crowdAtTheDoor(adapter: "deno" | "node") {
  const server: ServerProcess = await spawnServer(
    {
      HTTP_SERVER: adapter,
      AUTH_MODE: "dev",
      KV_PATH: ":memory:",
      INGEST_TOKEN,
      RATE_LIMIT: "off",
      MAX_STREAMS_PER_USER: "1000",
    },
    undefined,
    ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
  );
  const port = Number(new URL(server.url).port);
  const crowd: Deno.TcpConn[] = [];
  let early: SseClient | undefined;
  try {
    assert.match(server.output(), new RegExp(`"open_file_limit":${NOFILE}\\b`));
    const alice = await login(server.url, "alice");
    early = await SseClient.open(`${server.url}/api/v1/stream`, {
      authorization: `Bearer ${alice.token}`,
    });
    assert.equal(early.status, 200);
    const orderId = await placeOrder(server.url, alice.token);
    await postReport(server.url, { order_id: orderId, exec_id: "new", type: "new", at: now() });
    let fills = 0;
    const fill = () =>
      postReport(server.url, {
        order_id: orderId,
        exec_id: `fill-${++fills}`,
        type: "partial_fill",
        at: now(),
        last_qty: "1",
        last_price: "187.41",
      });

    // The stream flood: past the cap, a 503 with Retry-After, and the socket closed at once.
    const mob = await login(server.url, "mob");
    const streams = await Promise.all(
      Array.from({ length: CROWD_STREAMS }, () => openRawStream(port, mob.token)),
    );
    const refused = streams.filter((s) => s.status === 503);
    const served = streams.filter((s) => s.status === 200);
    assert.equal(served.length + refused.length, CROWD_STREAMS, "a stream got no status");
    assert.ok(served.length > 0 && refused.length > 0, `${served.length} served, all or none`);
    for (const s of refused) {
      assert.ok(Number(s.headers.get("retry-after")) >= 1, "a 503 without Retry-After");
      assert.equal(s.headers.get("connection"), "close");
    }
    if (adapter === "node") {
      assert.ok(await closedByServer(refused[0].conn, 5_000), "a refused stream was left open");
    } // Deno.serve sends the header but leaves closing to the client (denoland/deno#9411).
    for (const s of refused) closeQuietly(s.conn);
    crowd.push(...served.map((s) => s.conn));
    // The streams it took, it keeps: none of them may be closed by the server from here on.
    let servedDropped = 0;
    for (const s of served) {
      (async () => {
        const buf = new Uint8Array(1024);
        while ((await s.conn.read(buf)) !== null) { /* heartbeats */ }
        servedDropped++;
      })().catch(() => {/* closed by the test */});
    }

    // Meanwhile the service answers: health, an order action, the venue's reports.
    assert.equal((await tryFetch(`${server.url}/healthz`)).status, 200);
    const second = await placeOrder(server.url, alice.token);
    await fill();
    await fill();

    // The silent crowd: more sockets than descriptors left, holding on and sending nothing.
    const silent = await Promise.all(
      Array.from(
        { length: SILENT_SOCKETS },
        () => Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null),
      ),
    );
    for (const s of silent) if (s) crowd.push(s);
    // Shed while the crowd still holds on: a sign-in gets through again, by itself.
    await eventually(async () => {
      const res = await tryFetch(`${server.url}/api/v1/sessions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "carol" }),
      });
      return res.status === 201;
    }, 40_000);
    assert.ok(!server.exited(), "the server exited");

    assert.equal(servedDropped, 0, "streams the server had taken were dropped");
    // The crowd leaves; everything works with no restart.
    for (const c of crowd) closeQuietly(c);
    await fill();
    const bob = await eventually(
      () => login(server.url, "bob").catch(() => undefined),
      20_000,
    );
    const bobStream = await resent(() =>
      SseClient.open(`${server.url}/api/v1/stream`, { authorization: `Bearer ${bob.token}` })
    );
    assert.equal(bobStream.status, 200);
    const bobOrder = await placeOrder(server.url, bob.token);
    await bobStream.until((c) => c.orders().some((e) => e.order.id === bobOrder));
    bobStream.close();

    // The earlier stream saw every event of the trader's, once and in order.
    const expected: Json[] = [];
    for (const id of [orderId, second]) {
      const { json } = await resent(() =>
        api(server.url, alice.token, "GET", `/api/v1/orders/${id}/events`)
      );
      expected.push(...json.events);
    }
    expected.sort((a, b) => a.seq - b.seq);
    await early.until((c) => c.orders().length >= expected.length, 15_000);
    assert.deepEqual(
      early.orders().map((e) => `${e.seq}:${e.type}`),
      expected.map((e) => `${e.seq}:${e.type}`),
    );
    assert.equal(expected.length, 2 + 1 + fills, "an event is missing from the log");
    assert.ok(!early.closed, "the earlier stream was dropped");

    const metrics = (await tryFetch(`${server.url}/metrics`)).text;
    assert.match(metrics, /blotter_streams_refused_total [1-9]/);
    assert.match(metrics, new RegExp(`process_max_fds ${NOFILE}\n`));
    assert.match(metrics, /process_open_fds [1-9]/);
    assert.ok(!server.exited(), "the server exited");
  } finally {
    early?.close();
    for (const c of crowd) closeQuietly(c);
    const out = await server.stop();
    if (Deno.env.get("TEST_LOG")) console.log(out);
    assert.doesNotMatch(out, /Uncaught|Too many open files.*\n\s+at /);
    // Logged once per episode, not once per refused connection.
    const lines = (re: RegExp) => out.split("\n").filter((l) => re.test(l)).length;
    assert.ok(lines(/refusing new streams/) <= 2, "the refusals were logged per stream");
    assert.ok(lines(/stopped accepting connections/) <= 3, "accept failures logged per failure");
  }
}

function now(): string {
  return new Date().toISOString();
}

for (const adapter of ["deno", "node"] as const) {
  Deno.test({
    name: `open files (${adapter}): a crowd past the limit is refused or shed, never fatal`,
    // The crowd's sockets are closed by the server or by the test, in no order a sanitizer likes.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => crowdAtTheDoor(adapter),
  });
}

/** An app socket past hello: whether it was taken (`ready`), and how it closed, if it did. */
interface OpenedSocket {
  ws: WebSocket;
  ready: boolean;
  closed: number | null;
}

/** Opens an app socket and says hello; settles once it is ready or closed. */
function openAppSocket(port: number, token: string): Promise<OpenedSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`);
  const s: OpenedSocket = { ws, ready: false, closed: null };
  return new Promise((settled) => {
    ws.onopen = () => ws.send(JSON.stringify({ op: "hello", token }));
    ws.onmessage = (m) => {
      if (JSON.parse(m.data).op === "ready") (s.ready = true, settled(s));
    };
    ws.onerror = () => {};
    ws.onclose = (e) => (s.closed = e.code, settled(s));
  });
}

// An explicit MAX_STREAMS past what the open-file limit leaves: the app's own sockets fill the
// descriptors. A shed would free none of them and close them all (Deno.serve's shutdown ends
// upgraded connections), so the supervisor does not shed: new sockets are refused (1013) instead.
Deno.test({
  name: "open files (deno): app sockets filling the descriptors are refused, not shed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const server = await spawnServer(
      {
        AUTH_MODE: "dev",
        KV_PATH: ":memory:",
        INGEST_TOKEN,
        RATE_LIMIT: "off",
        MAX_STREAMS: "1000",
        MAX_STREAMS_PER_USER: "1000",
      },
      undefined,
      ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
    );
    const port = Number(new URL(server.url).port);
    const sockets: OpenedSocket[] = [];
    try {
      await eventually(() => /MAX_STREAMS is more than the open-file limit/.test(server.output()));
      const mob = await login(server.url, "mob");
      // In small batches, each settled before the next: the refusals, not a race, are tested.
      while (!sockets.some((s) => s.closed === 1013) && sockets.length < NOFILE) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, () => openAppSocket(port, mob.token)),
        );
        sockets.push(...batch);
      }
      const taken = sockets.filter((s) => s.ready);
      assert.ok(sockets.some((s) => s.closed === 1013), "no socket was refused with 1013");
      assert.ok(taken.length > 100, `only ${taken.length} sockets were taken`);
      // Past a few pressure checks (one a second), every socket taken is still open, and one of
      // them gets the trader's next event.
      await new Promise((r) => setTimeout(r, 3_000));
      assert.deepEqual(taken.filter((s) => s.closed !== null).map((s) => s.closed), []);
      const last = taken.at(-1)!;
      const got = new Promise<void>((r) =>
        last.ws.addEventListener("message", (m) => JSON.parse(m.data).op === "event" && r())
      );
      await placeOrder(server.url, mob.token);
      await got;
      assert.equal(taken.filter((s) => s.closed !== null).length, 0, "a taken socket closed");
      assert.ok(!server.exited(), "the server exited");
    } finally {
      for (const s of sockets) s.ws.close();
      const out = await server.stop();
      if (Deno.env.get("TEST_LOG")) console.log(out);
      assert.doesNotMatch(out, /running short of open files/, "the app's own sockets were shed");
    }
  },
});
