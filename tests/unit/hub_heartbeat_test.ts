import assert from "node:assert/strict";
import { Hub, type Subscriber } from "../../realtime/hub.ts";

Deno.test("hub: every stream gets a heartbeat each interval, and no tick beats them all", async () => {
  const hub = new Hub({ maxStreamsPerUser: 10, heartbeatMs: 200 });
  const beats = new Map<number, number>();
  let inTick = 0;
  let mostInOneTick = 0;
  const removals = Array.from({ length: 50 }, (_, i) => {
    const sub: Subscriber = {
      userId: `u${i % 10}`,
      sessionId: `s${i}`,
      lastSeq: 0,
      deliver() {},
      caughtUp() {},
      status() {},
      heartbeat() {
        beats.set(i, (beats.get(i) ?? 0) + 1);
        // A tick's heartbeats run in one callback: count them until it returns.
        if (inTick++ === 0) {
          queueMicrotask(() => {
            mostInOneTick = Math.max(mostInOneTick, inTick);
            inTick = 0;
          });
        }
      },
      close() {},
    };
    return hub.add(sub);
  });
  try {
    await new Promise((r) => setTimeout(r, 1_100));
    for (let i = 0; i < 50; i++) {
      const n = beats.get(i) ?? 0;
      // 1.1 s at one per 200 ms: 5 (timers may run late, never early).
      assert.ok(n >= 4 && n <= 6, `stream ${i}: ${n} heartbeats`);
    }
    assert.ok(mostInOneTick <= 5, `${mostInOneTick} streams beaten in one tick (of 50)`);
    // A stream that is gone gets none.
    removals[0]();
    const before = beats.get(0);
    await new Promise((r) => setTimeout(r, 450));
    assert.equal(beats.get(0), before);
  } finally {
    for (const remove of removals) remove();
    hub.closeAll("server shutting down");
  }
});
