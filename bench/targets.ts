/**
 * The systems under test, each started as its own process pinned to CPU 0 (`taskset -c 0`):
 * Blotter on the bench's Postgres cluster or on Deno KV, and the Socket.IO yardstick. Each says
 * how to open its devices' streams, how a report for report number n looks, and where it is.
 */
import {
  type Device,
  openAppSockets,
  openSocketIo,
  openSseStreams,
  type Streams,
} from "./clients.ts";
import type { Sink } from "./deliveries.ts";
import { execId } from "./deliveries.ts";
import { freePort, spawnPinned, treeCpuMicros } from "./procs.ts";

/** A running system under test. */
export interface Target {
  name: "postgres" | "kv" | "postgres-ws" | "kv-ws" | "socketio";
  pid: number;
  port: number;
  /** The inspector port a GC can be asked through, or null. */
  inspectPort: number | null;
  ingestPath: string;
  ingestHeaders: Record<string, string>;
  /** The report for report number n of step `step`, sent at `at`. */
  report(step: number, n: number, at: string): unknown;
  openStreams(sink: Sink): Promise<Streams>;
  cpuMicros(): number;
  stop(): Promise<void>;
}

const INGEST_TOKEN = "bench-ingest-token-0123456789";
const ROOT = new URL("..", import.meta.url).pathname;

async function ok(url: string): Promise<boolean> {
  const res = await fetch(url);
  await res.body?.cancel();
  return res.ok;
}

async function postJson(
  base: string,
  path: string,
  token: string,
  body: unknown,
  client?: Deno.HttpClient,
) {
  const res = await fetch(`${base}${path}`, {
    client,
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** How Blotter's ingest is reached: the path and the venue's headers. */
export const BLOTTER_INGEST = {
  path: "/api/v1/executions",
  headers: { authorization: `Bearer ${INGEST_TOKEN}` },
};

/** A Blotter server process, pinned to CPU 0 and ready. */
export interface BlotterProcess {
  pid: number;
  port: number;
  base: string;
  inspectPort: number | null;
  stop(): Promise<void>;
}

/**
 * Starts one Blotter server on Postgres (`databaseUrl`) or on Deno KV (a file in `kvDir`), pinned
 * to CPU 0; `env` adds settings (e.g. EVENT_BUS_URL). Resolves once `/readyz` answers 200.
 */
export async function spawnBlotter(opts: {
  store: "postgres" | "kv";
  databaseUrl?: string;
  kvDir?: string;
  gc: boolean;
  heartbeatMs?: number;
  env?: Record<string, string>;
}): Promise<BlotterProcess> {
  const port = freePort();
  const inspectPort = opts.gc ? freePort() : null;
  const base = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    AUTH_MODE: "dev",
    PORT: String(port),
    HOST: "127.0.0.1",
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "warn",
    // Which server adapter carries Blotter (server/): the bench's own HTTP_SERVER, else the default.
    ...(Deno.env.get("HTTP_SERVER") ? { HTTP_SERVER: Deno.env.get("HTTP_SERVER")! } : {}),
    ...(opts.heartbeatMs ? { HEARTBEAT_MS: String(opts.heartbeatMs) } : {}),
    ...(opts.store === "postgres"
      ? { DATABASE_URL: opts.databaseUrl! }
      : { DATABASE_URL: "", KV_PATH: `${opts.kvDir}/blotter.kv` }),
    ...opts.env,
  };
  const server = await spawnPinned(
    [
      Deno.execPath(),
      "run",
      "-A",
      // BENCH_V8_FLAGS adds V8 flags to the server's (comma-separated), e.g. --trace-gc.
      `--v8-flags=${["--expose-gc", Deno.env.get("BENCH_V8_FLAGS")].filter(Boolean).join(",")}`,
      ...(inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
      `${ROOT}main.ts`,
    ],
    env,
    () => ok(`${base}/readyz`),
  );
  return { pid: server.pid, port, base, inspectPort, stop: server.stop };
}

/**
 * Makes `users` users through the server at `base`, `devicesPerUser` sessions each (device
 * u * devicesPerUser + slot) and one big working order each (orders[u]), `parallel` users at a
 * time. User u is `bench<firstUser + u>` (several processes may each make their share).
 */
export async function seedUsers(
  base: string,
  users: number,
  devicesPerUser: number,
  parallel = 50,
  firstUser = 0,
): Promise<{ devices: Device[]; orders: string[] }> {
  const devices: Device[] = [];
  const orders: string[] = new Array(users);
  // Its own client, closed at the end: the keep-alive connections it pools would otherwise hold
  // the server's descriptors (and memory) for as long as the bench runs.
  const client = Deno.createHttpClient({});
  const post = (path: string, token: string, body: unknown) =>
    postJson(base, path, token, body, client);
  try {
    for (let i = 0; i < users; i += parallel) {
      await Promise.all(
        Array.from({ length: Math.min(parallel, users - i) }, async (_, j) => {
          const u = i + j;
          const tokens = [];
          for (let slot = 0; slot < devicesPerUser; slot++) {
            const username = `bench${firstUser + u}`;
            tokens.push((await post("/api/v1/sessions", "", { username })).token);
          }
          const order = await post("/api/v1/orders", tokens[0], {
            symbol: "AAPL",
            asset_class: "stock",
            side: "buy",
            qty: "1000000000",
          });
          await post(BLOTTER_INGEST.path, INGEST_TOKEN, {
            order_id: order.id,
            exec_id: `new-${order.id}`,
            type: "new",
            at: new Date().toISOString(),
          });
          orders[u] = order.id;
          tokens.forEach((token, slot) => devices[u * devicesPerUser + slot] = { token, slot });
        }),
      );
    }
  } finally {
    client.close();
  }
  return { devices, orders };
}

/** Report n of step `step`, sent at `at`: a partial fill of 1 on the working order `orderId`. */
export function fillReport(orderId: string, step: number, n: number, at: string) {
  return {
    order_id: orderId,
    exec_id: execId(step, n),
    type: "partial_fill",
    at,
    last_qty: "1",
    last_price: "187.50",
  };
}

/**
 * Blotter on Postgres (`databaseUrl`) or on Deno KV (a file in `kvDir`), with `users` users of
 * `devicesPerUser` sessions each and one large working order per user that the reports fill a
 * little at a time (partial fills of 1 on 1,000,000,000: every report a legal transition).
 */
export async function startBlotter(opts: {
  store: "postgres" | "kv";
  /** How devices connect: the JSON stream (default) or the app socket. */
  transport?: "sse" | "ws";
  databaseUrl?: string;
  kvDir?: string;
  users: number;
  devicesPerUser: number;
  gc: boolean;
  heartbeatMs?: number;
}): Promise<Target> {
  const server = await spawnBlotter(opts);
  const { port } = server;
  let seeded: Awaited<ReturnType<typeof seedUsers>>;
  try {
    seeded = await seedUsers(server.base, opts.users, opts.devicesPerUser);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const { devices, orders } = seeded;
  return {
    name: opts.transport === "ws" ? `${opts.store}-ws` : opts.store,
    pid: server.pid,
    port,
    inspectPort: server.inspectPort,
    ingestPath: BLOTTER_INGEST.path,
    ingestHeaders: BLOTTER_INGEST.headers,
    report: (step, n, at) => fillReport(orders[n % opts.users], step, n, at),
    openStreams: (sink) =>
      opts.transport === "ws"
        ? openAppSockets("127.0.0.1", port, devices, sink)
        : openSseStreams("127.0.0.1", port, devices, sink),
    cpuMicros: () => treeCpuMicros(server.pid),
    stop: server.stop,
  };
}

/** The yardstick: bench/socketio_server.mjs on Node (or Deno when Node is missing), in memory. */
export async function startSocketIo(opts: {
  users: number;
  devicesPerUser: number;
  gc: boolean;
  runtime: "node" | "deno";
}): Promise<Target> {
  const port = freePort();
  const inspectPort = opts.gc ? freePort() : null;
  const inspect = inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
  const script = `${ROOT}bench/socketio_server.mjs`;
  const argv = opts.runtime === "node"
    ? ["node", ...inspect, script, String(port)]
    : [Deno.execPath(), "run", "-A", ...inspect, script, String(port)];
  const server = await spawnPinned(argv, {}, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    await res.body?.cancel();
    return res.status === 200;
  });
  const devices = Array.from({ length: opts.users * opts.devicesPerUser }, (_, i) => ({
    token: "",
    user: `u${Math.floor(i / opts.devicesPerUser)}`,
    slot: i % opts.devicesPerUser,
  }));
  return {
    name: "socketio",
    pid: server.pid,
    port,
    inspectPort,
    ingestPath: "/executions",
    ingestHeaders: {},
    report: (step, n, at) => ({
      order_id: `u${n % opts.users}:1`,
      exec_id: execId(step, n),
      type: "partial_fill",
      at,
      last_qty: "1",
      last_price: "187.50",
    }),
    openStreams: (sink) => openSocketIo(`http://127.0.0.1:${port}`, devices, sink),
    cpuMicros: () => treeCpuMicros(server.pid),
    stop: server.stop,
  };
}
