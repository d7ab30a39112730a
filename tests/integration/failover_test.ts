/**
 * The failover drill, against a real standby: the test makes a primary and a streaming standby
 * (initdb, `pg_basebackup -R`, free ports, their own directories, removed after) and runs Blotter
 * as its own process on a `DATABASE_URL` naming both with `target_session_attrs=read-write`.
 *
 * 1. Synchronous replication, reports flowing from several senders, streams open: the primary is
 *    killed (`-m immediate`) and the standby promoted. Every report answered 201 is in the log
 *    once, seqs are gapless, open streams go on with no gap and no duplicate, new reports apply,
 *    nothing is written to the standby before it is promoted (no 500), `/readyz` is 503 while
 *    there is no primary.
 * 2. Asynchronous replication with a lost tail: the standby is stopped while the primary takes
 *    reports that a trader's streams show; the primary is killed, the standby started and
 *    promoted. Streams that showed the lost events get `reset` before anything of the new
 *    history; streams that showed none of them go on as if nothing happened.
 */
import assert from "node:assert/strict";
import { api, eventually, INGEST_TOKEN, login, spawnServer, type SseClient } from "../helpers.ts";
import { SseClient as Stream } from "../helpers.ts";
import { makeCluster, makeStandby, pgBin, type TestCluster } from "../pg_cluster.ts";

type Server = Awaited<ReturnType<typeof spawnServer>>;

/** A `DATABASE_URL` naming both servers, the primary first. */
function bothOf(a: TestCluster, b: TestCluster): string {
  return `postgres://postgres@127.0.0.1:${a.port},127.0.0.1:${b.port}/postgres` +
    "?target_session_attrs=read-write";
}

/** Waits until the standby streams from the primary (and, `sync`, is its synchronous standby). */
async function replicating(primary: TestCluster, sync: boolean): Promise<void> {
  await eventually(async () => {
    const state = await primary.psql("select sync_state from pg_stat_replication");
    return sync ? state.trim() === "sync" : state.trim() === "async";
  }, 20_000);
}

/** Waits until the standby has replayed everything the primary has written so far. */
async function caughtUp(primary: TestCluster, standby: TestCluster): Promise<void> {
  const lsn = (await primary.psql("select pg_current_wal_lsn()")).trim();
  await eventually(async () =>
    (await standby.psql(`select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`)).trim() === "t"
  );
}

async function trader(server: Server, name: string) {
  const { token } = await login(server.url, name);
  const placed = await api(server.url, token, "POST", "/api/v1/orders", {
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    qty: "1000000",
  });
  assert.equal(placed.status, 201);
  const orderId: string = placed.json.id;
  const accepted = await report(server, orderId, `${orderId}-new`, "new");
  assert.equal(accepted, 201);
  return { name, token, orderId };
}

/** One execution report; answers the status, or 0 when the request itself failed. */
async function report(server: Server, orderId: string, execId: string, type = "partial_fill") {
  try {
    const res = await fetch(`${server.url}/api/v1/executions`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({
        order_id: orderId,
        exec_id: execId,
        type,
        at: new Date().toISOString(),
        ...(type === "partial_fill" ? { last_qty: "1", last_price: "187.41" } : {}),
      }),
      signal: AbortSignal.timeout(20_000),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

function open(server: Server, token: string, path = "/api/v1/stream", lastEventId?: string) {
  return Stream.open(`${server.url}${path}`, {
    authorization: `Bearer ${token}`,
    ...(lastEventId ? { "last-event-id": lastEventId } : {}),
  });
}

/** The order events a JSON stream received, with their ids. */
function received(stream: SseClient) {
  return stream.messages.filter((m) => m.event === "order" || m.event === "reset")
    .map((m) => ({ event: m.event!, id: m.id ?? "", seq: Number((m.id ?? "0").split(".")[0]) }));
}

/** The order's events as the store has them now (its log, over the API). */
async function logOf(server: Server, token: string, orderId: string) {
  const res = await api(server.url, token, "GET", `/api/v1/orders/${orderId}/events`);
  assert.equal(res.status, 200);
  return res.json.events as Array<{ id: string; seq: number; execution?: { id: string } }>;
}

async function readyz(server: Server): Promise<number> {
  const res = await fetch(`${server.url}/readyz`);
  await res.body?.cancel();
  return res.status;
}

type Standby = Awaited<ReturnType<typeof makeStandby>>;

/**
 * A primary and its streaming standby (synchronous or not), and Blotter on a URL naming both;
 * `drill` runs with them, and everything is removed after, the streams it opened closed first.
 */
async function withStandby(
  sync: boolean,
  drill: (
    c: { primary: TestCluster; standby: Standby; server: Server; streams: SseClient[] },
  ) => Promise<void>,
): Promise<void> {
  const primary = await makeCluster(sync ? { settings: ["synchronous_standby_names='*'"] } : {});
  let standby: Standby | undefined;
  let server: Server | undefined;
  const streams: SseClient[] = [];
  try {
    await primary.start();
    standby = await makeStandby(primary);
    await standby.start();
    await replicating(primary, sync);
    server = await spawnServer({
      AUTH_MODE: "dev",
      DATABASE_URL: bothOf(primary, standby),
      INGEST_TOKEN,
      RATE_LIMIT: "off",
    });
    await drill({ primary, standby, server, streams });
  } catch (err) {
    // What the server said is what a failure here needs to be understood.
    console.error(server?.output().split("\n").slice(-40).join("\n"));
    throw err;
  } finally {
    for (const s of streams) s.close();
    await server?.stop();
    await standby?.remove();
    await primary.remove();
  }
}

Deno.test({
  name: "failover, synchronous: every 201 survives the primary, streams go on without a gap",
  ignore: pgBin() === null,
  fn: () =>
    withStandby(true, async ({ primary, standby, server, streams }) => {
      const traders = await Promise.all(["ann", "bob", "cy"].map((n) => trader(server, n)));
      for (const t of traders) streams.push(await open(server, t.token, "/api/v1/stream", "1"));

      // Several senders, each report a fresh exec_id; every answer is kept.
      const answers = new Map<string, { orderId: string; status: number }>();
      let sending = true;
      let sent = 0;
      const senders = Array.from({ length: 4 }, (_, s) =>
        (async () => {
          for (let i = 0; sending; i++) {
            const t = traders[(s + i) % traders.length];
            const execId = `s${s}-${i}`;
            sent++;
            answers.set(execId, {
              orderId: t.orderId,
              status: await report(server, t.orderId, execId),
            });
          }
        })());
      const count = (status: number) =>
        [...answers.values()].filter((a) => a.status === status).length;
      try {
        await eventually(() => count(201) >= 200, 20_000);
        await failOver();
      } finally {
        sending = false;
        await Promise.all(senders);
      }
      async function failOver() {
        await primary.stop("immediate");
        // No primary: not ready, and nothing is written to the standby (it would answer 500).
        await eventually(async () => (await readyz(server)) === 503, 20_000);
        const beforePromotion = count(201);
        await standby.promote();
        await eventually(async () => (await readyz(server)) === 200, 30_000);
        await eventually(() => count(201) >= beforePromotion + 200, 30_000);
      }

      const statuses = new Set([...answers.values()].map((a) => a.status));
      for (const s of statuses) assert.ok([201, 503].includes(s), `a report was answered ${s}`);
      assert.equal(answers.size, sent);

      for (const [i, t] of traders.entries()) {
        const log = await logOf(server, t.token, t.orderId);
        // Every report answered 201 is in the log, once; the log's seqs have no gap.
        const execs = log.flatMap((e) => e.execution ? [e.execution.id] : []);
        assert.equal(new Set(execs).size, execs.length, `${t.name}: an execution twice`);
        for (const [execId, a] of answers) {
          if (a.orderId === t.orderId && a.status === 201) {
            assert.ok(execs.includes(execId), `${t.name}: ${execId} answered 201, not in the log`);
          }
        }
        const seqs = log.map((e) => e.seq).sort((a, b) => a - b);
        assert.deepEqual(seqs, seqs.map((_, k) => seqs[0] + k), `${t.name}: a gap in the log`);

        // The stream opened before the failover has every event of the log, in order, once.
        const stream = streams[i];
        const last = log.at(-1)!.id;
        await stream.until((c) => received(c).some((m) => m.id === last), 20_000);
        const got = received(stream);
        assert.ok(got.every((m) => m.event === "order"), `${t.name}: the stream was reset`);
        const after = log.filter((e) => e.seq > 1).map((e) => e.id);
        assert.deepEqual(got.map((m) => m.id), after, `${t.name}: the stream's events differ`);
      }
    }),
});

Deno.test({
  name: "failover, asynchronous with a lost tail: who saw the lost events gets reset, no one a mix",
  ignore: pgBin() === null,
  fn: () =>
    withStandby(false, async ({ primary, standby, server, streams }) => {
      const ann = await trader(server, "ann"); // sees the events the failover loses
      const bob = await trader(server, "bob"); // sees none of them
      for (let i = 0; i < 3; i++) {
        assert.equal(await report(server, ann.orderId, `ann-kept-${i}`), 201);
        assert.equal(await report(server, bob.orderId, `bob-kept-${i}`), 201);
      }
      const annKept = (await logOf(server, ann.token, ann.orderId)).at(-1)!;
      const bobKept = (await logOf(server, bob.token, bob.orderId)).at(-1)!;
      await caughtUp(primary, standby);

      const annJson = await open(server, ann.token, "/api/v1/stream", annKept.id);
      const annPage = await open(server, ann.token, "/stream", annKept.id);
      const bobJson = await open(server, bob.token, "/api/v1/stream", bobKept.id);
      streams.push(annJson, annPage, bobJson);

      // The standby stops hearing; ann's next reports are acknowledged and shown, then lost.
      await standby.stop("fast");
      for (let i = 0; i < 3; i++) {
        assert.equal(await report(server, ann.orderId, `ann-lost-${i}`), 201);
      }
      const lost = (await logOf(server, ann.token, ann.orderId)).at(-1)!;
      assert.equal(lost.seq, annKept.seq + 3);
      await annJson.until((c) => received(c).some((m) => m.id === lost.id));
      await annPage.until((c) => c.messages.some((m) => m.id === lost.id));

      await primary.stop("immediate");
      await standby.start();
      await standby.promote();
      await eventually(async () => (await readyz(server)) === 200, 30_000);

      // The new primary's history grows past what ann's streams showed, under the same seqs.
      for (let i = 0; i < 5; i++) {
        assert.equal(await report(server, ann.orderId, `ann-new-${i}`), 201);
      }
      assert.equal(await report(server, bob.orderId, "bob-new-0"), 201);
      const annNow = await logOf(server, ann.token, ann.orderId);
      assert.ok(annNow.at(-1)!.seq > lost.seq, "the new history did not pass the old position");
      assert.ok(!annNow.some((e) => e.id === lost.id), "the lost event survived");

      // ann's JSON stream: the lost events, then `reset`, then only the new history.
      await annJson.until((c) => received(c).some((m) => m.id === annNow.at(-1)!.id), 20_000);
      const annGot = received(annJson);
      const reset = annGot.findIndex((m) => m.event === "reset");
      assert.ok(reset > 0, "ann's stream was not reset");
      assert.equal(
        annGot[reset - 1].id,
        lost.id,
        "something came between the lost event and reset",
      );
      assert.ok(annGot.slice(reset).every((m) => annNow.some((e) => e.id === m.id)));
      const resumed = annGot.slice(reset).map((m) => m.seq);
      assert.deepEqual(resumed, resumed.map((_, k) => resumed[0] + k), "a gap after the reset");

      // ann's page: `reset` before anything of the new history.
      await annPage.until((c) => c.messages.some((m) => m.event === "reset"), 20_000);
      const pageIds = annPage.messages.filter((m) => m.id !== undefined).map((m) => m.id!);
      const pageReset = annPage.messages.findIndex((m) => m.event === "reset");
      const beforeReset = annPage.messages.slice(0, pageReset).filter((m) => m.id).map((m) => m.id);
      assert.ok(beforeReset.every((id) => !annNow.some((e) => e.id === id && e.seq > annKept.seq)));
      assert.ok(pageIds.includes(lost.id));

      // bob's stream saw none of the lost events: it goes on, no reset, no gap.
      const bobNow = await logOf(server, bob.token, bob.orderId);
      await bobJson.until((c) => received(c).some((m) => m.id === bobNow.at(-1)!.id), 20_000);
      const bobGot = received(bobJson);
      assert.ok(bobGot.every((m) => m.event === "order"), "bob's stream was reset");
      assert.deepEqual(
        bobGot.map((m) => m.id),
        bobNow.filter((e) => e.seq > bobKept.seq).map((e) => e.id),
      );

      // A client that kept the lost id and comes back now: reset. One that kept a shared id: resumes.
      const late = await open(server, ann.token, "/api/v1/stream", lost.id);
      streams.push(late);
      await late.until((c) => received(c).length > 0);
      assert.equal(received(late)[0].event, "reset");
      const shared = await open(server, ann.token, "/api/v1/stream", annKept.id);
      streams.push(shared);
      await shared.until((c) => received(c).some((m) => m.id === annNow.at(-1)!.id));
      assert.deepEqual(
        received(shared).map((m) => m.id),
        annNow.filter((e) => e.seq > annKept.seq).map((e) => e.id),
      );
    }),
});
