/**
 * `deno task bench:store`: the Postgres store alone, no HTTP and no streams: reports applied one
 * at a time (each its own group and commit), then in concurrent groups of 4 and 16, against
 * DATABASE_URL (a fresh schema, dropped at the end). Prints wall time, this process's CPU (the
 * client: planning, postgres.js, the hand-off) and Postgres' CPU (every client backend of that
 * database, from /proc, so run it on the machine Postgres runs on) per report. Nothing is pinned:
 * compare figures from the same run, or from back-to-back runs.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test deno task bench:store [--groups 1,4,16]
 *
 * Nothing here is a test and nothing asserts a time.
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { silentLogger } from "../log.ts";
import { ExecutionReport, OrderRequest } from "../orders/model.ts";
import { openPgStore } from "../store/pg/mod.ts";
import { treeCpuMicros as cpuMicros } from "./procs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    groups: { type: "string", default: "1,4,16" },
    users: { type: "string", default: "200" },
  },
});
const url = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `bench_store_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
const admin = postgres(url, { max: 1, onnotice: () => {} });
const store = await openPgStore(url, { log: silentLogger, schema, max: 8 });
const users = Number(values.users);
let n = 0;
const report = (orderId: string, first = false) =>
  ExecutionReport.parse({
    order_id: orderId,
    exec_id: `s-${n++}`,
    type: first ? "new" : "partial_fill",
    at: new Date().toISOString(),
    ...(first ? {} : { last_qty: "1", last_price: "187.50" }),
  });

/** CPU µs so far of every client backend connected to the database (this process's own aside). */
async function postgresMicros(): Promise<number> {
  const rows = await admin<{ pid: number }[]>`
    select pid from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and pid <> pg_backend_pid()`;
  let total = 0;
  for (const { pid } of rows) {
    total += cpuMicros(pid); // 0 when it ended meanwhile, or is not on this machine
  }
  return total;
}

try {
  const orders = await Promise.all(Array.from({ length: users }, async (_, u) => {
    const request = OrderRequest.parse({
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "1000000000",
    });
    return (await store.placeOrder(`bench${u}`, request, new Date())).order.id;
  }));
  for (const id of orders) await store.applyReport(report(id, true), new Date());
  const round = (r: number, g: number) =>
    Promise.all(
      Array.from(
        { length: g },
        (_, i) => store.applyReport(report(orders[(r * g + i) % users]), new Date()),
      ),
    );
  for (const g of values.groups.split(",").map(Number)) {
    const rounds = Math.round((g === 1 ? 3000 : 6000) / g);
    for (let r = 0; r < 100; r++) await round(r, g); // warm-up
    const [client, server, t0] = [cpuMicros("self"), await postgresMicros(), performance.now()];
    for (let r = 0; r < rounds; r++) await round(r, g);
    const k = rounds * g;
    const wall = ((performance.now() - t0) * 1000) / k;
    console.log(JSON.stringify({
      kind: "store",
      date: new Date().toISOString(),
      group: g,
      reports: k,
      wall_us_per_report: Math.round(wall),
      client_cpu_us_per_report: Math.round((cpuMicros("self") - client) / k),
      postgres_cpu_us_per_report: Math.round((await postgresMicros() - server) / k),
    }));
  }
} finally {
  await store.close();
  await admin.unsafe(`drop schema if exists ${schema} cascade`);
  await admin.end();
}
