/**
 * Started while its Postgres is not up yet (a compose stack coming up, a failover under way),
 * Blotter waits for it: alive (`/healthz` 200), not ready (`/readyz` 503 naming the database),
 * everything else a 503 with Retry-After, one plain log line and no stack trace; once Postgres
 * starts, ready by itself within seconds, and orders work. A database that is there but wrong (a
 * missing database) is still a clear start-up error naming DATABASE_URL.
 */
import assert from "node:assert/strict";
import { api, eventually, login, spawnServer, SseClient } from "../helpers.ts";
import { DATABASE_URL, NO_POSTGRES } from "../pg_helper.ts";
import { makeCluster, pgBin } from "../pg_cluster.ts";

async function get(url: string) {
  const res = await fetch(url);
  const body = await res.json();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body };
}

/** Log lines that look like a stack trace or an uncaught error. */
const STACK = /Uncaught|^\s+at \S+ \(|error: .*Error: /m;

Deno.test({
  name: "late database: alive, not ready, then ready by itself when Postgres starts",
  ignore: pgBin() === null,
  async fn() {
    const cluster = await makeCluster();
    let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
    let told = false;
    try {
      server = await spawnServer({ AUTH_MODE: "dev", DATABASE_URL: cluster.url });
      assert.equal((await get(`${server.url}/healthz`)).status, 200);
      const ready = await get(`${server.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(ready.body.error.message, "waiting for the database");
      const signIn = await fetch(`${server.url}/api/v1/sessions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "early" }),
      });
      assert.equal(signIn.status, 503);
      assert.ok(Number(signIn.headers.get("retry-after")) >= 1);
      await signIn.body?.cancel();

      // A few retries go by: still one line about it.
      await new Promise((r) => setTimeout(r, 2_000));
      assert.ok(!server.exited(), "the server exited while waiting");
      await cluster.start();
      await eventually(async () => (await get(`${server!.url}/readyz`)).status === 200, 20_000);

      const alice = await login(server.url, "alice");
      const stream = await SseClient.open(`${server.url}/api/v1/stream`, {
        authorization: `Bearer ${alice.token}`,
      });
      const placed = await api(server.url, alice.token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "10",
      });
      assert.equal(placed.status, 201);
      await stream.until((c) => c.orders().some((e) => e.order.id === placed.json.id));
      stream.close();
      told = true;
    } finally {
      const out = (await server?.stop()) ?? "";
      await cluster.remove();
      // Only once the story held: a failure above is the one worth reading.
      if (told) {
        const waiting = out.split("\n").filter((l) => l.includes("waiting for the database"));
        assert.equal(waiting.length, 1, `waiting was logged ${waiting.length} times:\n${out}`);
        assert.match(waiting[0], /waiting for the database at 127\.0\.0\.1:\d+\/postgres \(/);
        assert.doesNotMatch(waiting[0], /postgres:\/\/|password/, "the log names credentials");
        assert.match(out, /the database answers: Blotter is ready/);
        assert.doesNotMatch(out, STACK);
      }
    }
  },
});

Deno.test({
  name: "late database: a database that is up but missing is a clear start-up error",
  ignore: NO_POSTGRES,
  async fn() {
    const url = new URL(DATABASE_URL);
    url.pathname = "/blotter_no_such_database";
    const err = await spawnServer({ AUTH_MODE: "dev", DATABASE_URL: url.href }).then(
      async (s) => {
        await s.stop();
        return null;
      },
      (e: Error) => e,
    );
    assert.ok(err, "the server started on a database that does not exist");
    assert.match(err.message, /server exited \(1\)/);
    assert.match(
      err.message,
      /DATABASE_URL: database \\"blotter_no_such_database\\" does not exist/,
    );
    assert.doesNotMatch(err.message.split("\n").slice(1).join("\n"), STACK);
  },
});
