/**
 * `deno task bench`: Blotter under load, as a separate server process with Postgres and every
 * event persisted. Opens many idle streams (server memory per stream), then drives execution
 * reports through the ingest API at a fixed rate and measures report → stream latency on the
 * client side (p50/p99) and losses. Figures go to bench/README.md with the machine and the date;
 * nothing here is a test and nothing asserts a time.
 *
 *   deno task bench [--streams 5000] [--users 1000] [--rate 1000] [--seconds 20]
 *   deno task bench --rates 250,500,750,1000 (a search: the highest rate with p99 < 100 ms)
 *
 * Needs DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); uses its own schema.
 */
import postgres from "postgres";
import { benchOptions, type Received, record, rssKb, runSteps, step } from "./load.ts";

const options = benchOptions();
const { streams: STREAMS, users: USERS, rates: RATES, seconds: SECONDS } = options;
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
const PORT = 18000 + Math.floor(Math.random() * 1000);
const URL_ = `http://127.0.0.1:${PORT}`;
const INGEST = "bench-ingest-token-0123456789";

async function post(path: string, token: string, body: unknown) {
  const res = await fetch(`${URL_}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    // BENCH_INSPECT=1: open the V8 inspector on 127.0.0.1:9229 to take a CPU profile of the server.
    ...(Deno.env.get("BENCH_INSPECT") ? ["--inspect=127.0.0.1:9229"] : []),
    new URL("../main.ts", import.meta.url).pathname,
  ],
  env: {
    AUTH_MODE: "dev",
    DATABASE_URL,
    DATABASE_SCHEMA: SCHEMA,
    PORT: String(PORT),
    INGEST_TOKEN: INGEST,
    RATE_LIMIT: "off",
    LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "warn",
    MAX_STREAMS_PER_USER: "1000",
  },
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

const streams: AbortController[] = [];
try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${URL_}/healthz`)).ok) break;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(
    `Blotter bench: ${STREAMS} streams over ${USERS} users, ${RATES} reports/s, ${SECONDS} s each`,
  );

  // Users, sessions and one big working order each.
  const users: Array<{ token: string; order: string }> = [];
  for (let i = 0; i < USERS; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, USERS - i) }, async (_, j) => {
        const { token } = await post("/api/v1/sessions", "", { username: `bench${i + j}` });
        const order = await post("/api/v1/orders", token, {
          symbol: "AAPL",
          asset_class: "stock",
          side: "buy",
          qty: "1000000",
        });
        await post("/api/v1/executions", INGEST, {
          order_id: order.id,
          exec_id: `new-${order.id}`,
          type: "new",
          at: new Date().toISOString(),
        });
        return { token, order: order.id };
      }),
    );
    users.push(...batch);
  }

  // Idle streams: memory per stream, measured as the server's RSS delta.
  await new Promise((r) => setTimeout(r, 1000));
  const rssBefore = rssKb(server.pid);
  const received: Received = { latencies: [], count: 0 };
  const decoder = new TextDecoder();
  const open = async (token: string) => {
    const ac = new AbortController();
    streams.push(ac);
    const res = await fetch(`${URL_}/api/v1/stream`, {
      headers: { authorization: `Bearer ${token}` },
      signal: ac.signal,
    });
    (async () => {
      let buf = "";
      try {
        for await (const chunk of res.body!) {
          buf += decoder.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            record(received, block);
          }
        }
      } catch { /* closed */ }
    })();
  };
  for (let i = 0; i < STREAMS; i += 200) {
    await Promise.all(
      Array.from(
        { length: Math.min(200, STREAMS - i) },
        (_, j) => open(users[(i + j) % USERS].token),
      ),
    );
  }
  await new Promise((r) => setTimeout(r, 3000));
  const rssIdle = rssKb(server.pid);

  // Load: `rate` reports/s in batches every 10 ms, each a fill on some user's order.
  const streamsPerUser = STREAMS / USERS;
  const runStep = (rate: number) =>
    step({
      rate,
      seconds: SECONDS,
      fanout: streamsPerUser,
      serverPid: server.pid,
      received,
      report: (i, exec_id, at) => ({
        order_id: users[i % USERS].order,
        exec_id,
        type: "partial_fill",
        at,
        last_qty: "1",
        last_price: "187.50",
      }),
      send: (batch) => post("/api/v1/executions", INGEST, batch),
    });
  await runSteps({ ...options, rssBefore, rssIdle, run: runStep });
} finally {
  for (const s of streams) s.abort();
  server.kill("SIGTERM");
  await server.status;
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop schema if exists "${SCHEMA}" cascade`);
  await sql.end();
}
