import assert from "node:assert/strict";
import { Hub, type Subscriber, type Ticker } from "../../realtime/hub.ts";

/** A heartbeat clock the test turns by hand, one tick at a time. */
function handTicker() {
  let every = 0;
  let tick: (() => void) | null = null;
  const ticker: Ticker = (ms, fn) => {
    every = ms;
    tick = fn;
    return () => (tick = null);
  };
  return {
    ticker,
    /** How many ticks make `ms` (the hub chose the tick's length). */
    ticksIn: (ms: number) => Math.floor(ms / every),
    step: () => tick?.(),
  };
}

Deno.test("hub: every stream gets a heartbeat each interval, and no tick beats them all", () => {
  const clock = handTicker();
  const hub = new Hub({ maxStreamsPerUser: 10, heartbeatMs: 200, ticker: clock.ticker });
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
        inTick++;
      },
      close() {},
    };
    return hub.add(sub);
  });
  try {
    // Five intervals, tick by tick: each tick's heartbeats counted apart.
    for (let t = 0; t < clock.ticksIn(5 * 200); t++) {
      inTick = 0;
      clock.step();
      mostInOneTick = Math.max(mostInOneTick, inTick);
    }
    for (let i = 0; i < 50; i++) {
      assert.equal(beats.get(i) ?? 0, 5, `stream ${i}: one heartbeat per interval`);
    }
    assert.ok(mostInOneTick <= 5, `${mostInOneTick} streams beaten in one tick (of 50)`);
    // A stream that is gone gets none.
    removals[0]();
    const before = beats.get(0);
    for (let t = 0; t < clock.ticksIn(2 * 200); t++) clock.step();
    assert.equal(beats.get(0), before);
    assert.equal(beats.get(1), 7);
  } finally {
    for (const remove of removals) remove();
    hub.closeAll("server shutting down");
  }
});

Deno.test("hub: once closed for shutdown, it takes no new stream (503, retry in a second)", async () => {
  const hub = new Hub({ maxStreamsPerUser: 10 });
  await hub.closeAll("server shutting down");
  const sub: Subscriber = {
    userId: "u",
    sessionId: "s",
    lastSeq: 0,
    deliver() {},
    caughtUp() {},
    status() {},
    heartbeat() {},
    close() {},
  };
  assert.throws(
    () => hub.add(sub),
    (err: { code?: string; status?: number }) => err.code === "unavailable" && err.status === 503,
  );
});
