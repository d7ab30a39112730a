/**
 * Never resumed into another history. A store loses its newest events and grows new ones under
 * the same seqs (KV: the file copied back while the server is down; Postgres: the schema restored
 * from a dump): a client resuming with the full id of an event of the lost history gets `reset`,
 * on the JSON stream and on the page's stream; with the id of an event both histories share it
 * resumes normally; a bare seq resumes by seq alone, as before.
 */
import assert from "node:assert/strict";
import { api, INGEST_TOKEN, login, SseClient, startServer, type TestServer } from "../helpers.ts";
import { DATABASE_URL, dropSchema, freshSchema, NO_POSTGRES } from "../pg_helper.ts";
import { pgBin } from "../pg_cluster.ts";

/** How a test keeps and puts back a store's history (the server is down meanwhile). */
interface History {
  env: Record<string, string>;
  keep(): Promise<void>;
  putBack(): Promise<void>;
}

const ID = /^(\d+)\.[A-Za-z0-9_-]{6,16}$/;

async function report(url: string, orderId: string, execId: string) {
  const r = await api(url, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: orderId,
    exec_id: execId,
    type: "partial_fill",
    at: new Date().toISOString(),
    last_qty: "1",
    last_price: "187.41",
  });
  assert.equal(r.status, 201);
}

/** The events a stream from `lastEventId` gets until it has `count` orders, or a reset. */
async function resume(url: string, token: string, path: string, lastEventId: string) {
  const stream = await SseClient.open(`${url}${path}`, {
    authorization: `Bearer ${token}`,
    "last-event-id": lastEventId,
  });
  assert.equal(stream.status, 200);
  return stream;
}

async function historyRegrown(history: History) {
  const env = { INGEST_TOKEN, RATE_LIMIT: "off", ...history.env };
  let server: TestServer = await startServer(env);
  const user = `trader-${crypto.randomUUID()}`;
  let token = (await login(server.url, user)).token;
  const placed = await api(server.url, token, "POST", "/api/v1/orders", {
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    qty: "100",
  });
  const orderId = placed.json.id;
  await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
    order_id: orderId,
    exec_id: "new",
    type: "new",
    at: new Date().toISOString(),
  });
  await report(server.url, orderId, "a-1"); // seq 3: both histories share it
  const shared = (await api(server.url, token, "GET", "/api/v1/orders")).json.last_event_id;
  assert.match(shared, ID);
  assert.equal(shared.split(".")[0], "3");
  await server.stop();
  await history.keep();

  // The history the client saw: seq 4 and 5.
  server = await startServer(env);
  await report(server.url, orderId, "lost-4");
  await report(server.url, orderId, "lost-5");
  const seen = (await api(server.url, token, "GET", "/api/v1/orders")).json.last_event_id;
  assert.equal(seen.split(".")[0], "5");
  await server.stop();

  // Put back, and grown again past the client's seq: seq 4, 5, 6 of another history.
  await history.putBack();
  server = await startServer(env);
  try {
    token = (await login(server.url, user)).token;
    for (const id of ["new-4", "new-5", "new-6"]) await report(server.url, orderId, id);
    const now = (await api(server.url, token, "GET", "/api/v1/orders")).json.last_event_id;
    assert.equal(now.split(".")[0], "6");
    assert.notEqual(now.split(".")[1], seen.split(".")[1]);

    // The full id of a lost event: reset (its id: the newest), then live; never a mixed view.
    for (const path of ["/api/v1/stream", "/stream"]) {
      const lost = await resume(server.url, token, path, seen);
      await lost.until((c) => c.messages.some((m) => m.event === "reset"));
      const reset = lost.messages.find((m) => m.event === "reset")!;
      assert.equal(reset.id, now, `${path}: the reset names the newest event`);
      assert.equal(lost.orders().length, 0, `${path}: an event of the new history was sent`);
      lost.close();
    }

    // An id both histories share: resumed, every event of the new history after it.
    const resumed = await resume(server.url, token, "/api/v1/stream", shared);
    await resumed.until((c) => c.orders().length === 3);
    assert.deepEqual(resumed.orders().map((e) => e.seq), [4, 5, 6]);
    assert.ok(!resumed.messages.some((m) => m.event === "reset"));
    resumed.close();

    // A bare seq (a client that kept only the seq) is resumed by seq alone, as before.
    const bare = await resume(server.url, token, "/api/v1/stream", "5");
    await bare.until((c) => c.orders().length === 1);
    assert.deepEqual(bare.orders().map((e) => e.seq), [6]);
    bare.close();
  } finally {
    await server.stop();
  }
}

Deno.test("history (KV): the file put back and regrown; a lost event's id gets reset", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/blotter.kv`;
  const copies = async (from: string, to: string) => {
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.remove(`${to}${suffix}`).catch(() => {});
      await Deno.copyFile(`${from}${suffix}`, `${to}${suffix}`).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  };
  try {
    await historyRegrown({
      env: { KV_PATH: file },
      keep: () => copies(file, `${dir}/backup.kv`),
      putBack: () => copies(`${dir}/backup.kv`, file),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "history (Postgres): the schema restored from a dump and regrown; reset on a lost id",
  ignore: NO_POSTGRES || pgBin() === null,
  async fn() {
    const schema = freshSchema();
    const dump = await Deno.makeTempFile({ suffix: ".sql" });
    const run = async (tool: string, args: string[]) => {
      const out = await new Deno.Command(`${pgBin()}/${tool}`, {
        args: [...args, DATABASE_URL],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) throw new Error(`${tool}: ${new TextDecoder().decode(out.stderr)}`);
    };
    try {
      await historyRegrown({
        env: { DATABASE_URL, DATABASE_SCHEMA: schema },
        keep: () => run("pg_dump", ["--schema", schema, "--file", dump, "--dbname"]),
        putBack: async () => {
          await dropSchema(schema);
          await run("psql", ["--quiet", "--set", "ON_ERROR_STOP=1", "--file", dump, "--dbname"]);
        },
      });
    } finally {
      await dropSchema(schema);
      await Deno.remove(dump);
    }
  },
});
