/**
 * When the change feed returns, streams hear `ok` only once they have been caught up from the log
 * (CONTRACT: degraded "until the bus returns and they have caught up"): a client that stops
 * polling at `ok` must already have what was committed while the feed was away. A return during a
 * running round waits for the round after it; a failed round is tried again; a feed gone again
 * meanwhile tells nothing.
 */
import assert from "node:assert/strict";
import { OrderRequest } from "../../orders/model.ts";
import { startFeed } from "../../realtime/feed.ts";
import type { EventLog } from "../../store/store.ts";
import { Hub, type RealtimeStatus, type Subscriber } from "../../realtime/hub.ts";
import { silentLogger } from "../../log.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { ChangeListeners } from "../../store/change_listeners.ts";
import { eventually } from "../helpers.ts";

/** A feed over an in-memory store with one stream; `read` stands between the feed and the log. */
async function setup(read?: (next: () => ReturnType<EventLog["eventsSinceMany"]>) => unknown) {
  const store = await openKvStore(":memory:");
  const changes = new ChangeListeners(silentLogger, { connected: true });
  const hub = new Hub({ maxStreamsPerUser: 5 });
  const told: string[] = [];
  const stream: Subscriber = {
    userId: "uma",
    sessionId: "s1",
    lastSeq: 0,
    live: true,
    deliver: (events) => void told.push(...events.map((e) => `event ${e.seq}`)),
    caughtUp: (events) => void told.push(...events.map((e) => `caught up ${e.seq}`)),
    status: (s: RealtimeStatus) => void told.push(s.realtime),
    heartbeat: () => {},
    close: () => {},
  };
  const feed = startFeed({
    store: {
      changes,
      eventsSinceMany: (p, l) => {
        const next = () => store.eventsSinceMany(p, l);
        return (read ? read(next) : next()) as ReturnType<EventLog["eventsSinceMany"]>;
      },
      revokedAmong: (ids) => store.revokedAmong(ids),
    },
    hub,
    log: silentLogger,
  });
  const remove = hub.add(stream);
  const place = () =>
    store.placeOrder(
      "uma",
      OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1" }),
      new Date(),
    );
  return {
    changes,
    told,
    place,
    async [Symbol.asyncDispose]() {
      remove();
      feed.stop();
      await store.close();
    },
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("feed: after the feed returns, 'ok' comes after the catch-up, not before", async () => {
  await using f = await setup();
  f.changes.down("the bus is gone");
  await f.place(); // committed while the feed is away: nobody is told
  f.changes.up();
  await eventually(() => f.told.includes("ok"));
  assert.deepEqual(f.told, ["degraded", "caught up 1", "ok"]);
});

Deno.test("feed: a return during a running round: 'ok' after the round that follows it", async () => {
  let rounds = 0;
  let gate: PromiseWithResolvers<void> | null = Promise.withResolvers();
  await using f = await setup(async (next) => {
    rounds++;
    if (gate) await gate.promise;
    return next();
  });
  f.changes.down("the bus is gone");
  f.changes.up();
  await eventually(() => rounds === 1); // the first round is reading
  await f.place(); // committed after that round's read began…
  f.changes.resync(); // …and a second return (the bus's settle) asks for one more
  const g = gate;
  gate = null;
  g.resolve();
  await eventually(() => f.told.includes("ok"));
  assert.equal(rounds, 2, "'ok' before the second round");
  // Both rounds read the log after the gate (a stream drops what it already has).
  assert.deepEqual(f.told, ["degraded", "caught up 1", "caught up 1", "ok"]);
});

Deno.test("feed: a catch-up that fails is tried again; 'ok' only once one reads the log", async () => {
  let rounds = 0;
  await using f = await setup((next) => {
    rounds++;
    if (rounds === 1) throw new Error("the database went away for a moment");
    return next();
  });
  f.changes.down("the bus is gone");
  await f.place();
  f.changes.up();
  await eventually(() => rounds === 1);
  await pause(100);
  assert.deepEqual(f.told, ["degraded"], "'ok' after a failed catch-up");
  await eventually(() => f.told.includes("ok"));
  assert.deepEqual(f.told, ["degraded", "caught up 1", "ok"]);
});

Deno.test("feed: gone again during the catch-up: no 'ok'", async () => {
  const gate = Promise.withResolvers<void>();
  let rounds = 0;
  await using f = await setup(async (next) => {
    rounds++;
    await gate.promise;
    return next();
  });
  f.changes.down("the bus is gone");
  f.changes.up();
  await eventually(() => rounds === 1);
  f.changes.down("gone again");
  gate.resolve();
  await pause(100);
  assert.ok(!f.told.includes("ok"), `told: ${f.told}`);
});
