/**
 * The app socket, `GET /api/v1/ws` (CONTRACT), over real WebSockets to a real server: hello,
 * ready, events live and replayed, reset onto another history, pings; every close code the
 * handshake and the socket give (4400, 4401, 4403, 4429, 1012); a cookie only from this site's
 * Origin; a JWT that expires mid-connection, refreshed over the socket or not; a user's socket
 * never carries another user's events.
 */
import assert from "node:assert/strict";
import { sign } from "hono/utils/jwt/jwt";
import {
  api,
  eventually,
  INGEST_TOKEN,
  login,
  SseClient,
  startServer,
  type TestServer,
} from "../helpers.ts";

/** One WebSocket to the server, its messages parsed, its close awaited. */
class Socket {
  readonly messages: Array<Record<string, unknown>> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  #wake: () => void = () => {};

  constructor(server: TestServer, headers?: Record<string, string>) {
    const url = `${server.url.replace("http", "ws")}/api/v1/ws`;
    // Deno's WebSocket takes headers (a cookie, an Origin), as a browser sends them.
    this.#ws = new (WebSocket as unknown as new (u: string, o?: unknown) => WebSocket)(
      url,
      headers ? { headers } : undefined,
    );
    this.#ws.onmessage = (e) => {
      this.messages.push(JSON.parse(String(e.data)));
      this.#wake();
    };
    this.closed = new Promise((resolve) => {
      this.#ws.onclose = (e) => {
        resolve({ code: e.code, reason: e.reason });
        this.#wake();
      };
    });
  }

  async opened(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) return;
    await new Promise((resolve, reject) => {
      this.#ws.onopen = resolve;
      this.#ws.onerror = reject;
    });
  }

  send(message: unknown): void {
    this.#ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Waits (bounded) until `check` holds over the messages so far. */
  async until(check: (m: Array<Record<string, unknown>>) => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out: ${JSON.stringify(this.messages).slice(0, 500)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.#wake = () => (clearTimeout(t), r());
      });
    }
  }

  events(): Array<{ id: string; seq: number; order: { id: string } }> {
    return this.messages.filter((m) => m.op === "event").map((m) => m.event as never);
  }

  close(): void {
    this.#ws.close();
  }
}

/** Opens a socket and says hello; answers it once `ready` came. */
async function hello(server: TestServer, message: Record<string, unknown>) {
  const socket = new Socket(server);
  await socket.opened();
  socket.send({ op: "hello", ...message });
  await socket.until((m) => m.some((x) => x.op === "ready"));
  return socket;
}

async function placeAndAccept(server: TestServer, token: string, execId: string) {
  const placed = await api(server.url, token, "POST", "/api/v1/orders", {
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    qty: "10",
  });
  assert.equal(placed.status, 201);
  const accepted = await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: placed.json.id,
    exec_id: execId,
    type: "new",
    at: new Date().toISOString(),
  });
  assert.equal(accepted.status, 201);
  return placed.json.id as string;
}

Deno.test("app socket: hello, ready, the user's own events live, pings", async () => {
  const server = await startServer({ HEARTBEAT_MS: "300" });
  const sockets: Socket[] = [];
  try {
    const ann = await login(server.url, "ann");
    const bob = await login(server.url, "bob");
    const annSocket = await hello(server, { token: ann.token });
    const bobSocket = await hello(server, { token: bob.token });
    sockets.push(annSocket, bobSocket);
    assert.deepEqual(annSocket.messages[0], {
      op: "ready",
      last_event_id: null,
      heartbeat_ms: 300,
    });
    const orderId = await placeAndAccept(server, ann.token, "a-1");
    await annSocket.until(() => annSocket.events().length === 2);
    assert.deepEqual(annSocket.events().map((e) => e.seq), [1, 2]);
    assert.ok(annSocket.events().every((e) => e.order.id === orderId));
    await annSocket.until((m) => m.some((x) => x.op === "ping"));
    // bob's socket heard pings and nothing of ann's.
    await bobSocket.until((m) => m.some((x) => x.op === "ping"));
    assert.equal(bobSocket.events().length, 0);
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
  }
});

Deno.test("app socket: resume from a seq replays after it; another history's id resets", async () => {
  const server = await startServer();
  const sockets: Socket[] = [];
  try {
    const ann = await login(server.url, "ann");
    await placeAndAccept(server, ann.token, "r-1");
    await placeAndAccept(server, ann.token, "r-2");
    // A bare seq: ready completes it with its tag; the replay starts after it.
    const bare = await hello(server, { token: ann.token, last_event_id: "2" });
    sockets.push(bare);
    await bare.until(() => bare.events().length === 2);
    assert.deepEqual(bare.events().map((e) => e.seq), [3, 4]);
    const first = await api(server.url, ann.token, "GET", "/api/v1/orders?status=all");
    const list = first.json.last_event_id as string;
    assert.match(bare.messages[0].last_event_id as string, /^2\.[A-Za-z0-9_-]{6,16}$/);
    // The id of an event of another history (the same seq, another tag): reset, live from now.
    const other = await hello(server, { token: ann.token, last_event_id: "3.zzzzzzzz" });
    sockets.push(other);
    await other.until((m) => m.some((x) => x.op === "reset"));
    const reset = other.messages.find((x) => x.op === "reset")!;
    assert.equal(reset.last_event_id, list);
    assert.equal(other.events().length, 0);
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
  }
});

Deno.test("app socket: bad messages close with 4400, bad credentials with 4401", async () => {
  const server = await startServer();
  try {
    const ann = await login(server.url, "ann");
    const cases: Array<[string, unknown, number]> = [
      ["not JSON", "hello there", 4400],
      ["not an object", "[1,2]", 4400],
      ["an unknown op", { op: "subscribe" }, 4400],
      ["auth before hello", { op: "auth", token: ann.token }, 4400],
      ["over 16 KB", { op: "hello", token: ann.token, pad: "x".repeat(17_000) }, 4400],
      ["a malformed last_event_id", { op: "hello", token: ann.token, last_event_id: "3.x" }, 4400],
      // The client's own text never reaches the close reason (at most 123 bytes, or it throws).
      ["a long unknown op", { op: "x".repeat(500) }, 4400],
      ["a bad token", { op: "hello", token: "nope" }, 4401],
      ["no token and no cookie", { op: "hello" }, 4401],
    ];
    for (const [why, message, code] of cases) {
      const socket = new Socket(server);
      await socket.opened();
      socket.send(message);
      assert.equal((await socket.closed).code, code, why);
    }
    // And the server is still there for the next one.
    (await hello(server, { token: ann.token })).close();
  } finally {
    await server.stop();
  }
});

Deno.test("app socket: no hello within 10 s closes it with 4400", async () => {
  const server = await startServer();
  try {
    const socket = new Socket(server);
    await socket.opened();
    const started = Date.now();
    const { code } = await socket.closed;
    assert.equal(code, 4400);
    assert.ok(Date.now() - started >= 9_000, "closed before its 10 s");
  } finally {
    await server.stop();
  }
});

Deno.test("app socket: a cookie counts only from this site's Origin", async () => {
  const server = await startServer();
  const sockets: Socket[] = [];
  try {
    const ann = await login(server.url, "ann");
    const cookie = `blotter_session=${ann.token}`;
    // Another site's page: refused before any upgrade.
    const res = await fetch(`${server.url}/api/v1/ws`, {
      headers: { cookie, origin: "https://evil.example" },
    });
    assert.equal(res.status, 403);
    assert.equal((await res.json()).error.code, "forbidden");
    const cross = new Socket(server, { cookie, origin: "https://evil.example" });
    await assert.rejects(cross.opened());
    // This site's own page: the cookie authenticates; hello needs no token.
    const own = new Socket(server, { cookie, origin: server.url });
    sockets.push(own);
    await own.opened();
    own.send({ op: "hello" });
    await own.until((m) => m.some((x) => x.op === "ready"));
    // The cookie is checked when hello comes: a session revoked since the upgrade gets nothing.
    const phone = await login(server.url, "ann");
    const late = new Socket(server, {
      cookie: `blotter_session=${phone.token}`,
      origin: server.url,
    });
    await late.opened();
    const revoked = await api(
      server.url,
      ann.token,
      "DELETE",
      `/api/v1/sessions/${phone.session_id}`,
    );
    assert.equal(revoked.status, 204);
    late.send({ op: "hello" });
    assert.equal((await late.closed).code, 4401);
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
  }
});

Deno.test("app socket: sockets and streams share the user's cap (4429)", async () => {
  const server = await startServer({ MAX_STREAMS_PER_USER: "2" });
  const sockets: Socket[] = [];
  let stream: SseClient | undefined;
  try {
    const ann = await login(server.url, "ann");
    stream = await SseClient.open(`${server.url}/api/v1/stream`, {
      authorization: `Bearer ${ann.token}`,
    });
    sockets.push(await hello(server, { token: ann.token }));
    const third = new Socket(server);
    await third.opened();
    third.send({ op: "hello", token: ann.token });
    assert.equal((await third.closed).code, 4429);
  } finally {
    stream?.close();
    for (const s of sockets) s.close();
    await server.stop();
  }
});

Deno.test("app socket: a revoked session closes with 4403, a stopping server with 1012", async () => {
  const server = await startServer();
  try {
    const ann = await login(server.url, "ann");
    const phone = await login(server.url, "ann");
    const revoked = await hello(server, { token: phone.token });
    const staying = await hello(server, { token: ann.token });
    const res = await api(server.url, ann.token, "DELETE", `/api/v1/sessions/${phone.session_id}`);
    assert.equal(res.status, 204);
    assert.equal((await revoked.closed).code, 4403);
    const closing = staying.closed;
    await server.stop();
    assert.equal((await closing).code, 1012);
  } catch (err) {
    await server.stop();
    throw err;
  }
});

const SECRET = "a-shared-secret-of-at-least-32-characters!";
const nowS = () => Math.floor(Date.now() / 1000);

Deno.test("app socket: credentials that expire end it (4401) unless refreshed by auth", async () => {
  const server = await startServer({ AUTH_MODE: "jwt", AUTH_JWT_SECRET: SECRET });
  const sockets: Socket[] = [];
  let stream: SseClient | undefined;
  try {
    const soon = (sid: string) => sign({ sub: "jo", sid, exp: nowS() + 2 }, SECRET);
    const refreshed = await hello(server, { token: await soon("phone") });
    const lapsed = await hello(server, { token: await soon("tablet") });
    stream = await SseClient.open(`${server.url}/api/v1/stream`, {
      authorization: `Bearer ${await soon("laptop")}`,
    });
    sockets.push(refreshed, lapsed);
    refreshed.send({
      op: "auth",
      token: await sign({ sub: "jo", sid: "phone", exp: nowS() + 60 }, SECRET),
    });
    assert.equal((await lapsed.closed).code, 4401);
    await stream.ended(5_000); // the stream ends at its credentials' expiry too
    // The refreshed one outlived the first expiry and still carries events.
    const token = await sign({ sub: "jo", sid: "phone", exp: nowS() + 60 }, SECRET);
    await placeAndAccept(server, token, "j-1");
    await refreshed.until(() => refreshed.events().length === 2);
    // A token of another user's session is no refresh: 4401.
    refreshed.send({
      op: "auth",
      token: await sign({ sub: "max", sid: "x", exp: nowS() + 60 }, SECRET),
    });
    assert.equal((await refreshed.closed).code, 4401);
  } finally {
    stream?.close();
    for (const s of sockets) s.close();
    await server.stop();
  }
});

Deno.test("app socket: a client that stops reading is closed with 4408", async () => {
  const server = await startServer({ STREAM_QUEUE_LIMIT: "10" });
  let conn: Deno.TcpConn | undefined;
  try {
    const ann = await login(server.url, "ann");
    const orderId = await placeAndAccept(server, ann.token, "s-0");
    // A WebSocket by hand over TCP: the upgrade, one hello frame, then never another read.
    conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await conn.write(new TextEncoder().encode(
      "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const head = new Uint8Array(1024);
    const n = await conn.read(head);
    assert.match(new TextDecoder().decode(head.subarray(0, n ?? 0)), /^HTTP\/1\.1 101/);
    await conn.write(maskedText(JSON.stringify({ op: "hello", token: ann.token })));
    // Fills pour in (about 1 KB each) until the kernel's buffers are full and the server's own
    // queue passes STREAM_QUEUE_LIMIT events' worth: then it closes the socket.
    const closed = eventually(async () => {
      const m = await (await fetch(`${server.url}/metrics`)).text();
      return /blotter_streams_closed_total\{reason="slow consumer"\} [1-9]/.test(m);
    }, 60_000);
    let sent = 0;
    let done = false;
    closed.then(() => (done = true), () => (done = true));
    while (!done && sent < 40_000) {
      const batch = Array.from({ length: 500 }, (_, i) => ({
        order_id: orderId,
        exec_id: `s-${sent + i + 1}`,
        type: "partial_fill",
        at: new Date().toISOString(),
        last_qty: "0.0001",
        last_price: "187.41",
      }));
      const res = await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", batch);
      assert.equal(res.status, 200);
      sent += batch.length;
    }
    await closed;
    // Reading at last, the client finds what was queued, then the close frame: 4408.
    assert.equal(await closeCodeOf(conn), 4408);
  } finally {
    conn?.close();
    await server.stop();
  }
});

/** One masked text frame, as a client must send it. */
function maskedText(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const header = payload.length < 126
    ? [0x81, 0x80 | payload.length]
    : [0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
  const frame = new Uint8Array(header.length + 4 + payload.length);
  frame.set(header);
  frame.set(mask, header.length);
  payload.forEach((b, i) => (frame[header.length + 4 + i] = b ^ mask[i % 4]));
  return frame;
}

/** Reads server frames (unmasked) until the close frame; answers its code. */
async function closeCodeOf(conn: Deno.TcpConn): Promise<number> {
  let buffer = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  for (;;) {
    // A frame: opcode, then a 7-bit length, or 126 + 16 bits, or 127 + 64 bits.
    while (buffer.length >= 2) {
      const opcode = buffer[0] & 0x0f;
      let length = buffer[1] & 0x7f, offset = 2;
      if (length === 126) [length, offset] = [(buffer[2] << 8) | buffer[3], 4];
      else if (length === 127) {
        length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
        offset = 10;
      }
      if (buffer.length < offset + length) break;
      if (opcode === 0x8) return (buffer[offset] << 8) | buffer[offset + 1];
      buffer = buffer.subarray(offset + length);
    }
    const n = await conn.read(chunk);
    if (n === null) throw new Error("the connection ended without a close frame");
    const grown = new Uint8Array(buffer.length + n);
    grown.set(buffer);
    grown.set(chunk.subarray(0, n), buffer.length);
    buffer = grown;
  }
}
