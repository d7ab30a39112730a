/**
 * `deno task bench:floor`: what the cheapest possible version of each piece of a report's work
 * costs on this machine, measured the way the bench measures Blotter (bench/README.md): the
 * system under test alone on CPU 0, this process (the load) on CPU 1, CPU from /proc over the
 * step divided by the work done. It answers "how far below this can Blotter go here?":
 *
 * - HTTP: a POST read and answered 201 by a server that does nothing else (bench/floor/):
 *   Deno.serve bare, Deno.serve + Hono parsing the JSON, Deno's node:http bare (what
 *   `HTTP_SERVER=node` stands on), Node's http bare; one request per report over keep-alive
 *   connections, at the bench's rates.
 * - Memory: RSS per idle SSE stream of a minimal server (Deno.serve with a ReadableStream body;
 *   node:http with res.write, on Deno and on Node), `--streams` [5000] held open, after a full
 *   GC, with the V8 heap's share; on Deno.serve also per idle keep-alive connection and per bare
 *   TCP connection.
 * - Postgres: a durable commit (synchronous_commit on, the bench's own pinned cluster) of one
 *   small row per report, and of ten rows per commit at the same report rate; and what a
 *   postgres.js round trip costs this process (the client), one at a time and ten pipelined.
 *
 *   deno task bench:floor [--rates 1000,2000,4000] [--seconds 5] [--connections 64]
 *
 * Nothing here is a test and nothing asserts a time.
 */
import http from "node:http";
import net from "node:net";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { startCluster } from "./pg_cluster.ts";
import { freePort, pinSelf, rssKb, spawnPinned, treeCpuMicros } from "./procs.ts";
import { Sender } from "./sender.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rates: { type: "string", default: "1000,2000,4000" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    "pg-port": { type: "string", default: "5499" },
    streams: { type: "string", default: "5000" },
  },
});
const rates = values.rates.split(",").map(Number);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
/** Where the minimal servers are. */
const SERVERS = new URL("./floor/", import.meta.url).pathname;

/** One line of figures, as JSON (to paste) and as a table row. */
const rows: string[] = [];
function report(what: string, rate: string, achieved: number, us: number, extra = "") {
  console.log(JSON.stringify({ kind: "floor", what, rate, achieved, cpu_us: us, extra }));
  rows.push(`| ${what} | ${rate} | ${achieved.toLocaleString("en")} | ${us} | ${extra} |`);
}

/** Starts a minimal server (bench/floor/) pinned to CPU 0 with PORT set; waits until it answers. */
function startServer(argv: string[], port: number) {
  const up = () =>
    fetch(`http://127.0.0.1:${port}/`).then(async (r) => {
      await r.body?.cancel();
      return true;
    });
  return spawnPinned(argv, { PORT: String(port) }, up, SERVERS);
}

async function httpFloor(name: string, argv: string[]) {
  const port = freePort();
  const server = await startServer(argv, port);
  const headers = { "content-type": "application/json" };
  const sender = new Sender("127.0.0.1", port, "/", headers, connections);
  try {
    // A warm-up, so that JIT and connection set-up are not in the figures.
    await sender.run({ rate: 500, seconds: 1, batch: 1, drainSeconds: 5, report: (n) => ({ n }) });
    for (const rate of rates) {
      const before = treeCpuMicros(server.pid);
      const r = await sender.run({
        rate,
        seconds,
        batch: 1,
        drainSeconds: 5,
        report: (n, at) => ({ n, at, exec_id: `x${n}`, last_qty: "1", last_price: "187.50" }),
      });
      const us = Math.round((treeCpuMicros(server.pid) - before) / Math.max(1, r.accepted));
      report(name, `${rate}/s`, Math.round(r.accepted / r.seconds), us, "per request");
    }
  } finally {
    sender.close();
    await server.stop();
  }
}

/**
 * RSS per connection of a minimal server, `streams` connections held open, after a full GC: an
 * SSE stream each ("sse"), or on Deno.serve's server also a keep-alive connection that had one
 * request answered ("keep-alive") and a connection that never sent one ("tcp"), which tell the
 * connection's own memory from that of a response in flight. The V8 heap's share is beside it.
 */
async function streamFloor(name: string, argv: string[], mode: "sse" | "keep-alive" | "tcp") {
  const port = freePort();
  const server = await startServer(argv, port);
  const count = Number(values.streams);
  const gc = (): Promise<{ heapTotal: number }> =>
    fetch(`http://127.0.0.1:${port}/gc`).then((r) => r.json());
  const held: Array<{ destroy(): void }> = [];
  try {
    const heapBefore = (await gc()).heapTotal;
    const before = rssKb(server.pid);
    let open = 0;
    await new Promise<void>((done, fail) => {
      const opened = () => {
        if (++open === count) done();
      };
      for (let i = 0; i < count; i++) {
        if (mode === "sse") {
          const req = http.get({ host: "127.0.0.1", port, path: "/s", agent: false }, (res) => {
            res.on("data", () => {});
            opened();
          });
          req.on("error", fail);
          held.push(req);
          continue;
        }
        const socket = net.connect(port, "127.0.0.1", () => {
          if (mode === "tcp") return opened();
          socket.write("GET /plain HTTP/1.1\r\nhost: floor\r\n\r\n");
          socket.once("data", opened);
        });
        socket.on("error", fail);
        held.push(socket);
      }
    });
    await new Promise((r) => setTimeout(r, 3000));
    const heapAfter = (await gc()).heapTotal;
    const kb = (rssKb(server.pid) - before) / count;
    const heapKb = (heapAfter - heapBefore) / 1024 / count;
    console.log(
      JSON.stringify({
        kind: "floor",
        what: name,
        streams: count,
        kb_per_stream: Math.round(kb * 10) / 10,
        v8_heap_kb_per_stream: Math.round(heapKb * 10) / 10,
      }),
    );
    rows.push(
      `| ${name} | ${count.toLocaleString("en")} held open | — | ${kb.toFixed(1)} KB | per ${
        mode === "sse" ? "stream" : "connection"
      } (RSS; V8 heap ${heapKb.toFixed(1)} KB) |`,
    );
  } finally {
    for (const h of held) h.destroy();
    await server.stop();
  }
}

/** Durable commits at `rate` reports/s for `seconds`, `perCommit` reports (rows) per commit. */
async function commitFloor(
  sql: postgres.Sql,
  clusterCpu: () => number,
  rate: number,
  perCommit: number,
) {
  const total = rate * seconds;
  const body = JSON.stringify({ qty: "1", price: "187.50", at: new Date().toISOString() });
  const inFlight: Promise<unknown>[] = [];
  const before = clusterCpu();
  const started = performance.now();
  for (let n = 0; n < total; n += perCommit) {
    const due = started + (n / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const k = Math.min(perCommit, total - n);
    inFlight.push(sql`
      insert into floor_rows (u, body)
      select 'u' || g, ${body}::json from generate_series(1, ${k}::int) g`);
  }
  await Promise.all(inFlight);
  const secs = (performance.now() - started) / 1000;
  const us = Math.round((clusterCpu() - before) / total);
  report(
    `Postgres: ${perCommit === 1 ? "one row per commit" : `${perCommit} rows per commit`}`,
    `${rate}/s`,
    Math.round(total / secs),
    us,
    "Postgres CPU per report",
  );
}

async function roundTrips(sql: postgres.Sql, clusterCpu: () => number) {
  const n = 5_000;
  for (let i = 0; i < 500; i++) await sql`select ${i}::int as x`;
  let client = treeCpuMicros("self");
  let server = clusterCpu();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await sql`select ${i}::int as x`;
  const wall = Math.round(((performance.now() - t0) * 1000) / n);
  report(
    "postgres.js round trip, one at a time",
    "as fast as it goes",
    Math.round(n / ((performance.now() - t0) / 1000)),
    Math.round((treeCpuMicros("self") - client) / n),
    `client CPU per query (Postgres ${
      Math.round((clusterCpu() - server) / n)
    } µs; wall ${wall} µs)`,
  );
  client = treeCpuMicros("self");
  server = clusterCpu();
  const t1 = performance.now();
  for (let i = 0; i < n / 10; i++) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => sql`select ${j}::int as x`));
  }
  report(
    "postgres.js round trip, ten pipelined",
    "as fast as it goes",
    Math.round(n / ((performance.now() - t1) / 1000)),
    Math.round((treeCpuMicros("self") - client) / n),
    `client CPU per query (Postgres ${Math.round((clusterCpu() - server) / n)} µs)`,
  );
}

await pinSelf(1);
console.log(
  JSON.stringify({ kind: "run", date: new Date().toISOString(), rates, seconds, connections }),
);
const deno = Deno.execPath();
await httpFloor("Deno.serve, bare", [deno, "run", "-A", "deno_bare.ts"]);
await httpFloor("Deno.serve + Hono", [
  deno,
  "run",
  "-A",
  "--node-modules-dir=auto",
  `--config=${SERVERS}../../deno.json`,
  "deno_hono.ts",
]);
// The same minimal node:http server on Deno: what the `HTTP_SERVER=node` adapter stands on.
await httpFloor("node:http on Deno, bare", [deno, "run", "-A", "node_bare.mjs"]);
await httpFloor("node:http on Node, bare", ["node", "node_bare.mjs"]);
const denoSse = [deno, "run", "-A", "--v8-flags=--expose-gc", "deno_sse.ts"];
await streamFloor("SSE on Deno.serve, a ReadableStream body", denoSse, "sse");
await streamFloor("Deno.serve, a keep-alive connection after one answer", denoSse, "keep-alive");
await streamFloor("Deno.serve, a TCP connection with no request", denoSse, "tcp");
await streamFloor(
  "SSE on node:http on Deno, res.write",
  [deno, "run", "-A", "--v8-flags=--expose-gc", "node_sse.mjs"],
  "sse",
);
await streamFloor("SSE on Node's http, res.write", ["node", "--expose-gc", "node_sse.mjs"], "sse");

const cluster = await startCluster(Number(values["pg-port"]));
const sql = postgres(cluster.url, { max: 4, onnotice: () => {} });
try {
  await sql`create table floor_rows (id bigserial primary key, u text not null, body json not null)`;
  const clusterCpu = () => treeCpuMicros(cluster.postmasterPid());
  await roundTrips(sql, clusterCpu);
  for (const rate of rates) await commitFloor(sql, clusterCpu, rate, 1);
  for (const rate of rates) await commitFloor(sql, clusterCpu, rate, 10);
} finally {
  await sql.end();
  await cluster.stop();
}

console.log("\n| what | rate | achieved | CPU µs | per |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
