/**
 * When the change feed returns, streams hear `ok` only once they have been caught up from the log
 * (CONTRACT: degraded "until the bus returns and they have caught up"): a client that stops
 * polling at `ok` must already have what was committed while the feed was away.
 */
import assert from "node:assert/strict";
import { OrderRequest } from "../../orders/model.ts";
import { startFeed } from "../../realtime/feed.ts";
import { Hub, type RealtimeStatus, type Subscriber } from "../../realtime/hub.ts";
import { silentLogger } from "../../log.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { ChangeListeners } from "../../store/change_listeners.ts";
import { eventually } from "../helpers.ts";

Deno.test("feed: after the feed returns, 'ok' comes after the catch-up, not before", async () => {
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
      eventsSinceMany: (p, l) => store.eventsSinceMany(p, l),
      revokedAmong: (ids) => store.revokedAmong(ids),
    },
    hub,
    log: silentLogger,
  });
  const remove = hub.add(stream);
  try {
    changes.down("the bus is gone");
    // Committed while the feed is away: nobody is told.
    await store.placeOrder(
      "uma",
      OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1" }),
      new Date(),
    );
    changes.up();
    await eventually(() => told.includes("ok"));
    assert.deepEqual(told, ["degraded", "caught up 1", "ok"]);
  } finally {
    remove();
    feed.stop();
    await store.close();
  }
});
