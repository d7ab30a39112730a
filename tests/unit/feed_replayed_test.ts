/**
 * The feed hands events told again (a resend's stored events, the bus's sweep) to the push
 * dispatcher only when they are recent: a session's resend hours later alerts nobody, while the
 * streams still get them (they take each event once).
 */
import assert from "node:assert/strict";
import { OrderRequest, type UserEvent } from "../../orders/model.ts";
import { startFeed } from "../../realtime/feed.ts";
import { Hub } from "../../realtime/hub.ts";
import { silentLogger } from "../../log.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { ChangeListeners } from "../../store/change_listeners.ts";

Deno.test("feed: events told again alert only when recent; first-heard ones always", async () => {
  const store = await openKvStore(":memory:");
  const changes = new ChangeListeners(silentLogger, { connected: true });
  const offered: UserEvent[] = [];
  const feed = startFeed({
    store: {
      changes,
      eventsSinceMany: (p, l) => store.eventsSinceMany(p, l),
      revokedAmong: (ids) => store.revokedAmong(ids),
    },
    hub: new Hub({ maxStreamsPerUser: 5 }),
    push: { onEvents: (batch) => void offered.push(...batch) },
    log: silentLogger,
  });
  try {
    const { events: [event] } = await store.placeOrder(
      "ola",
      OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "1" }),
      new Date(),
    );
    const old = {
      user_id: "ola",
      event: { ...event, at: new Date(Date.now() - 7_200_000).toISOString() },
    };
    const fresh = { user_id: "ola", event: { ...event, at: new Date().toISOString() } };
    changes.publish([old, fresh], true);
    assert.deepEqual(offered, [fresh]);
    changes.publish([old]);
    assert.deepEqual(offered, [fresh, old], "heard the first time, its age does not matter");
  } finally {
    feed.stop();
    await store.close();
  }
});
