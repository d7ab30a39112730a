/**
 * Overload (WRITE_QUEUE_LIMIT): a burst of reports from 2,000 concurrent connections to a real
 * server (its own process, so its memory is its own) with a small write queue. Some are refused
 * with 503 + Retry-After; every 201 is in the log exactly once; a retry of the refused ones with
 * the same exec_id applies each once; the server's RSS stays under a stated bound throughout.
 * On Postgres and on KV.
 */
import assert from "node:assert/strict";
import { api, INGEST_TOKEN, type Json, login, spawnServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";

/** Concurrent connections in the burst, one report each. */
const CONNECTIONS = 2_000;
const USERS = 20;
const ORDERS_PER_USER = 5;
/** The server's RSS bound during and after the burst (it idles near 100-150 MB). */
const MAX_RSS_MB = 400;

function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** Posts one report on a connection of its own (no keep-alive pool shared with the others). */
async function post(url: string, body: Record<string, unknown>) {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(`${url}/api/v1/executions`, {
      method: "POST",
      client,
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await res.body?.cancel();
    return { status: res.status, retryAfter: res.headers.get("retry-after") };
  } finally {
    client.close();
  }
}

async function burst(env: Record<string, string>) {
  const server = await spawnServer({
    AUTH_MODE: "dev",
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    WRITE_QUEUE_LIMIT: "50",
    ...env,
  });
  try {
    const users = await Promise.all(
      Array.from({ length: USERS }, (_, i) => login(server.url, `burst-${i}`)),
    );
    const orders: Array<{ id: string; token: string }> = [];
    for (const u of users) {
      for (let i = 0; i < ORDERS_PER_USER; i++) {
        const placed = await api(server.url, u.token, "POST", "/api/v1/orders", {
          symbol: "AAPL",
          asset_class: "stock",
          side: "buy",
          qty: "100000",
        });
        assert.equal(placed.status, 201);
        orders.push({ id: placed.json.id, token: u.token });
        const r = await post(server.url, {
          order_id: placed.json.id,
          exec_id: `new-${placed.json.id}`,
          type: "new",
          at: new Date().toISOString(),
        });
        assert.equal(r.status, 201);
      }
    }
    const reports = Array.from({ length: CONNECTIONS }, (_, i) => ({
      order_id: orders[i % orders.length].id,
      exec_id: `burst-${i}`,
      type: "partial_fill",
      at: new Date().toISOString(),
      last_qty: "1",
      last_price: "10",
    }));
    let peak = rssMb(server.pid);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, rssMb(server.pid));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const answers = await Promise.all(reports.map((r) => post(server.url, r)));
    const refused = reports.filter((_, i) => answers[i].status === 503);
    assert.ok(refused.length > 0, "no report was refused: the burst never filled the queue");
    assert.ok(refused.length < CONNECTIONS, "every report was refused");
    for (const a of answers) {
      assert.ok(a.status === 201 || a.status === 503, `unexpected ${a.status}`);
      if (a.status === 503) assert.ok(Number(a.retryAfter) >= 1, "a 503 without Retry-After");
    }
    const applied = reports.filter((_, i) => answers[i].status === 201).map((r) => r.exec_id);

    const execCounts = async () => {
      const counts = new Map<string, number>();
      for (const o of orders) {
        const { json } = await api(server.url, o.token, "GET", `/api/v1/orders/${o.id}/events`);
        for (const e of json.events as Json[]) {
          if (e.execution) counts.set(e.execution.id, (counts.get(e.execution.id) ?? 0) + 1);
        }
      }
      return counts;
    };
    const before = await execCounts();
    for (const id of applied) assert.equal(before.get(id), 1, `${id} is not in the log once`);
    assert.equal(before.size, applied.length, "a report answered 503 was applied");

    // The venue backs off and retries the refused ones with the same exec_id.
    let pending = refused;
    for (let round = 0; pending.length > 0 && round < 20; round++) {
      await new Promise((r) => setTimeout(r, 1_000));
      const again: typeof pending = [];
      for (let i = 0; i < pending.length; i += 40) {
        const chunk = pending.slice(i, i + 40);
        const rs = await Promise.all(chunk.map((r) => post(server.url, r)));
        rs.forEach((r, j) => {
          if (r.status === 503) again.push(chunk[j]);
          else assert.equal(r.status, 201, `a retry answered ${r.status}`);
        });
      }
      pending = again;
    }
    assert.equal(pending.length, 0, "retries were still refused");
    sampling = false;
    await sampler;
    const after = await execCounts();
    for (const r of reports) assert.equal(after.get(r.exec_id), 1, `${r.exec_id} not once`);
    assert.ok(peak < MAX_RSS_MB, `server RSS peaked at ${peak.toFixed(0)} MB`);
  } finally {
    await server.stop();
  }
}

Deno.test({
  name:
    "overload (postgres): 2,000 concurrent reports: 503 + Retry-After past the queue, none lost",
  ignore: NO_POSTGRES,
  async fn() {
    const schema = freshSchema();
    try {
      await burst({ DATABASE_URL, DATABASE_SCHEMA: schema });
    } finally {
      await dropSchema(schema);
    }
  },
});

Deno.test({
  name: "overload (kv): 2,000 concurrent reports: 503 + Retry-After past the queue, none lost",
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await burst({ KV_PATH: `${dir}/blotter.kv` });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
