/**
 * A full disk is a 503, not a 500. The store's files sit on a small tmpfs (root mounts it; CI runs
 * as root) that is then filled: reports and order actions are answered 503 with Retry-After,
 * `/readyz` is 503 naming the disk, the log has a bounded number of lines about it, the server
 * stays up. Space freed: `/readyz` comes back by itself, and the venue's resends of the refused
 * reports apply exactly once, each reaching the open stream once. On Deno KV, and on Postgres
 * with a test cluster's data directory on the tmpfs.
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
import { makeCluster, pgBin } from "../pg_cluster.ts";

/** Why these tests cannot run here, or null: they mount a tmpfs, which takes root. */
const CANNOT_MOUNT = Deno.uid() === 0 ? null : "mounting a tmpfs needs root (CI runs as root)";
if (CANNOT_MOUNT) console.warn(`disk_full_test: skipped, ${CANNOT_MOUNT}`);

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A tmpfs of `mb` MiB on a fresh directory; `remove()` unmounts and deletes it. */
async function smallDisk(mb: number) {
  const dir = await Deno.makeTempDir({ prefix: "blotter-small-disk-" });
  await sh("mount", "-t", "tmpfs", "-o", `size=${mb}m,mode=0777`, "tmpfs", dir);
  const filler = `${dir}/filler`;
  return {
    dir,
    /** Takes every byte left (the file grows until the disk says no). */
    async fill(): Promise<void> {
      const file = await Deno.open(filler, { create: true, append: true });
      const chunk = new Uint8Array(64 * 1024);
      try {
        for (;;) await file.write(chunk);
      } catch (err) {
        if (!String(err).includes("No space left")) throw err;
      } finally {
        file.close();
      }
    },
    async free(): Promise<void> {
      await Deno.remove(filler);
    },
    async remove(): Promise<void> {
      await sh("umount", "-l", dir);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Posts one report; answers its status and Retry-After. */
async function post(url: string, report: Record<string, string>) {
  const res = await fetch(`${url}/api/v1/executions`, {
    method: "POST",
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(report),
  });
  await res.body?.cancel();
  return { status: res.status, retryAfter: Number(res.headers.get("retry-after")) };
}

async function readyz(url: string) {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: await res.json() };
}

/** Runs the whole story against a server whose store's files live on `disk`. */
async function diskFills(server: ServerProcess, disk: Awaited<ReturnType<typeof smallDisk>>) {
  const alice = await login(server.url, "alice");
  const stream = await SseClient.open(`${server.url}/api/v1/stream`, {
    authorization: `Bearer ${alice.token}`,
  });
  try {
    const placed = await api(server.url, alice.token, "POST", "/api/v1/orders", {
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "100000",
    });
    assert.equal(placed.status, 201);
    const orderId = placed.json.id;
    const at = new Date().toISOString();
    assert.equal(
      (await post(server.url, { order_id: orderId, exec_id: "new", type: "new", at }))
        .status,
      201,
    );
    const fill = (n: number) => ({
      order_id: orderId,
      exec_id: `fill-${n}`,
      type: "partial_fill",
      at,
      last_qty: "1",
      last_price: "187.41",
    });

    await disk.fill();
    // The store may still have free pages for a few writes; then every write is refused.
    const sent: Array<{ n: number; status: number }> = [];
    for (let n = 1; n <= 400 && sent.filter((s) => s.status === 503).length < 20; n++) {
      const answer = await post(server.url, fill(n));
      assert.ok(answer.status === 201 || answer.status === 503, `report answered ${answer.status}`);
      if (answer.status === 503) assert.ok(answer.retryAfter >= 1, "a 503 without Retry-After");
      sent.push({ n, status: answer.status });
    }
    const refused = sent.filter((s) => s.status === 503).map((s) => s.n);
    assert.ok(refused.length >= 20, `only ${refused.length} of ${sent.length} refused`);
    const order = await api(server.url, alice.token, "POST", "/api/v1/orders", {
      symbol: "MSFT",
      asset_class: "stock",
      side: "buy",
      qty: "1",
      client_order_id: "while-full",
    });
    assert.equal(order.status, 503, "an order action on a full disk");
    assert.equal(order.json.error.code, "unavailable");

    const signIn = await fetch(`${server.url}/api/v1/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "while-full" }),
    });
    await signIn.body?.cancel();
    // A sign-in (a write outside the gate) is a 503 when it needs room; Postgres may still find
    // a session row room in a page it has. Never a 500.
    assert.ok(
      signIn.status === 503 || signIn.status === 201,
      `a sign-in answered ${signIn.status}`,
    );
    if (signIn.status === 503) assert.ok(Number(signIn.headers.get("retry-after")) >= 1);

    const notReady = await readyz(server.url);
    assert.equal(notReady.status, 503);
    assert.match(notReady.body.error.message, /disk is full/);
    const health = await fetch(`${server.url}/healthz`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    assert.ok(!server.exited(), "the server exited on a full disk");

    // Space is back: ready by itself, and the venue's resends apply once each.
    await disk.free();
    await eventually(async () => (await readyz(server.url)).status === 200, 15_000);
    for (const n of refused) {
      assert.equal((await post(server.url, fill(n))).status, 201, `resent fill-${n}`);
      assert.equal((await post(server.url, fill(n))).status, 200, `fill-${n} twice`);
    }
    const { json } = await api(server.url, alice.token, "GET", `/api/v1/orders/${orderId}/events`);
    const execs = (json.events as Json[]).filter((e) => e.execution).map((e) => e.execution.id);
    assert.equal(new Set(execs).size, execs.length, "an execution applied twice");
    assert.deepEqual(execs.sort(), sent.map((s) => `fill-${s.n}`).sort(), "not every fill once");
    await stream.until((c) => c.orders().length >= json.events.length, 15_000);
    assert.deepEqual(
      stream.orders().map((e) => e.seq),
      (json.events as Json[]).map((e) => e.seq),
      "the stream did not get each event once, in order",
    );

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /blotter_store_disk_full_writes_total [1-9]/);
  } finally {
    stream.close();
  }
}

/** Lines about the full disk: one when it began, one when it ended — not one per request. */
function assertBoundedLog(out: string) {
  const lines = out.split("\n").filter((l) => /disk is full|No space left|disk_full/i.test(l));
  assert.ok(
    lines.length <= 3,
    `${lines.length} log lines about the full disk:\n${lines.join("\n")}`,
  );
  assert.match(out, /the store takes writes again/);
  assert.doesNotMatch(out, /"level":"error","message":"unhandled error"/);
}

Deno.test({
  name: "disk full (KV): 503 + Retry-After, not ready, bounded log; space back: resends apply once",
  ignore: CANNOT_MOUNT !== null,
  async fn() {
    const disk = await smallDisk(4);
    try {
      const server = await spawnServer({
        AUTH_MODE: "dev",
        KV_PATH: `${disk.dir}/blotter.kv`,
        INGEST_TOKEN,
        RATE_LIMIT: "off",
      });
      let told = false;
      try {
        await diskFills(server, disk);
        told = true;
      } finally {
        const out = await server.stop();
        // Only once the story held: a failure above is the one worth reading.
        if (told) assertBoundedLog(out);
      }
    } finally {
      await disk.remove();
    }
  },
});

Deno.test({
  name: "disk full (Postgres): 503 + Retry-After, not ready, bounded log; resends apply once",
  ignore: CANNOT_MOUNT !== null || pgBin() === null,
  async fn() {
    // initdb takes ~40 MB; WAL segments are made ahead of time, so a full disk first stops
    // tables from growing ("could not extend file", 53100) while the WAL still has room.
    const disk = await smallDisk(96);
    try {
      const cluster = await makeCluster({ parent: disk.dir });
      try {
        await cluster.start();
        const server = await spawnServer({
          AUTH_MODE: "dev",
          DATABASE_URL: cluster.url,
          INGEST_TOKEN,
          RATE_LIMIT: "off",
        });
        let told = false;
        try {
          await diskFills(server, disk);
          told = true;
        } finally {
          const out = await server.stop();
          if (Deno.env.get("TEST_LOG")) console.log(out, cluster.log().slice(-3000));
          if (told) assertBoundedLog(out);
        }
      } finally {
        await cluster.remove();
      }
    } finally {
      await disk.remove();
    }
  },
});
