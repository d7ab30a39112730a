/**
 * The change feed's catch-up on reconnect: a reconnect heard while a catch-up is already running
 * must not be dropped. A commit that lands after the running catch-up read the log (and was not
 * heard live, the feed having been away) reaches streams only by another round, run once the
 * current one ends. The store is a real KV store; only its change source is driven by the test,
 * so that "connected" can be said twice while the first catch-up is held after its read.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { type OrderEvent, OrderRequest } from "../../orders/model.ts";
import { startFeed } from "../../realtime/feed.ts";
import { Hub, type Subscriber } from "../../realtime/hub.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import type { ChangeListener, ChangeSource } from "../../store/store.ts";
import { eventually } from "../helpers.ts";

const order = () =>
  OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" });

Deno.test("feed: a reconnect during a running catch-up gets a round of its own", async () => {
  const store = await openKvStore(":memory:");
  try {
    // The feed listens here (the store's own in-process source is left unheard: "the feed away").
    let listener!: ChangeListener;
    const changes: ChangeSource = {
      connected: false,
      subscribe(l) {
        listener = l;
        l.disconnected("connecting");
        return () => {};
      },
    };
    let calls = 0;
    let readDone!: () => void;
    const firstRead = new Promise<void>((r) => (readDone = r));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const feedStore = {
      changes,
      async eventsSinceMany(
        positions: ReadonlyArray<{ user_id: string; after_seq: number }>,
        limit: number,
      ) {
        const events = await store.eventsSinceMany(positions, limit);
        if (++calls === 1) {
          readDone();
          await held;
        }
        return events;
      },
      revokedAmong: (ids: string[]) => store.revokedAmong(ids),
    };

    const hub = new Hub({ maxStreamsPerUser: 5 });
    const delivered: OrderEvent[] = [];
    const sub: Subscriber = {
      userId: "ann",
      sessionId: "s1",
      get lastSeq() {
        return delivered.at(-1)?.seq ?? 0;
      },
      deliver(events) {
        for (const e of events) if (e.seq > this.lastSeq) delivered.push(e);
      },
      caughtUp(events) {
        this.deliver(events);
      },
      status() {},
      heartbeat() {},
      close() {},
    };
    hub.add(sub);
    const feed = startFeed({ store: feedStore, hub, log: silentLogger });
    try {
      listener.connected(); // the first catch-up reads the log (empty) and is held there
      await firstRead;
      const placed = await store.placeOrder("ann", order(), new Date()); // committed, unheard
      listener.connected(); // a second resync, asked while the first is running
      release();
      await eventually(() => delivered.some((e) => e.seq === placed.events[0].seq));
      assert.deepEqual(delivered.map((e) => e.seq), [1]);
      assert.equal(calls, 2);
    } finally {
      feed.stop();
    }
  } finally {
    await store.close();
  }
});
