/**
 * The order keeping every live connection shares (realtime/follower.ts), through an SSE stream on
 * a real KV store: the feed's catch-up never resets a stream that simply moved on while the
 * catch-up read the log; a stream whose position is gone from the store is reset.
 */
import assert from "node:assert/strict";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { Hub } from "../../realtime/hub.ts";
import { EventStream } from "../../realtime/sse.ts";
import type { StreamFormat } from "../../realtime/stream_format.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import type { Store } from "../../store/store.ts";

const JSON_EVENTS: StreamFormat = {
  name: "json",
  coalesceMs: 0,
  eventName: "order",
  render: (events) => JSON.stringify(events[0]),
  renderStatus: () => [],
};

/** The messages of a stream's body, as `{event, id}`, read as they come. */
function reader(stream: EventStream) {
  const messages: Array<{ event?: string; id?: string }> = [];
  const body = stream.sink.response({}).body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const reading = (async () => {
    for (;;) {
      const { done, value } = await body.read();
      if (done) return;
      buffer += value;
      let i;
      while ((i = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const m: { event?: string; id?: string } = {};
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) m.event = line.slice(7);
          if (line.startsWith("id: ")) m.id = line.slice(4);
        }
        if (m.event) messages.push(m);
      }
    }
  })();
  return {
    messages,
    async until(check: () => boolean) {
      const deadline = Date.now() + 5_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      await body.cancel();
      await reading;
    },
  };
}

/** A JSON stream of `userId`'s, live from now. */
function streamOf(store: Store, hub: Hub, userId: string): EventStream {
  return new EventStream({
    userId,
    sessionId: "s1",
    store,
    hub,
    format: JSON_EVENTS,
    resumeFrom: null,
    queueLimit: 100,
    retryMs: 1_000,
    heartbeatMs: 15_000,
  });
}

async function report(store: Store, orderId: string, execId: string, type: string) {
  const r = await store.applyReport(
    ExecutionReport.parse({
      order_id: orderId,
      exec_id: execId,
      type,
      at: new Date().toISOString(),
    }),
    new Date(),
  );
  return r.events;
}

Deno.test("follower: a catch-up read before the stream moved on does not reset it", async () => {
  const store = await openKvStore(":memory:");
  const hub = new Hub({ maxStreamsPerUser: 5 });
  const placed = await store.placeOrder(
    "ann",
    OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "5" }),
    new Date(),
  );
  const stream = streamOf(store, hub, "ann");
  const read = reader(stream);
  try {
    await stream.open(); // live at seq 1
    // The feed's catch-up reads the log (seq 1)…
    const list = await store.eventsSince("ann", 0, 10);
    // …while the stream moves on to seq 2, live.
    const second = await report(store, placed.order.id, "x1", "new");
    hub.publish("ann", second);
    await read.until(() => read.messages.some((m) => m.id === second[0].id));
    // The catch-up's answer arrives late: seq 2 is not in it, and that is no lost history.
    hub.catchUp("ann", list);
    const third = await report(store, placed.order.id, "x2", "canceled");
    hub.publish("ann", third);
    await read.until(() => read.messages.some((m) => m.id === third[0].id));
    assert.deepEqual(read.messages.map((m) => m.event), ["order", "order"]);
  } finally {
    stream.close("server shutting down");
    await read.stop();
    hub.closeAll("server shutting down");
    await store.close();
  }
});

Deno.test("follower: an event at the stream's seq under another id resets it first", async () => {
  const store = await openKvStore(":memory:");
  const hub = new Hub({ maxStreamsPerUser: 5 });
  const placed = await store.placeOrder(
    "bea",
    OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "5" }),
    new Date(),
  );
  const stream = streamOf(store, hub, "bea");
  const read = reader(stream);
  try {
    await stream.open(); // live at seq 1, whose id the store holds
    const [mine] = await store.eventsSince("bea", 0, 1);
    // Another history's seq 1 and 2 (a failover's new primary), heard live: never sent.
    const other = [{ ...mine, id: "1.otherTag" }, { ...mine, seq: 2, id: "2.otherTag" }];
    hub.publish("bea", other);
    await read.until(() => read.messages.some((m) => m.event === "reset"));
    assert.ok(!read.messages.some((m) => m.id?.endsWith("otherTag")), "another history was sent");
    // Live from the store's newest: the next real event follows the reset.
    const next = await report(store, placed.order.id, "y1", "new");
    hub.publish("bea", next);
    await read.until(() => read.messages.some((m) => m.id === next[0].id));
  } finally {
    stream.close("server shutting down");
    await read.stop();
    hub.closeAll("server shutting down");
    await store.close();
  }
});

Deno.test("follower: the log is read only once the user's changes flow here (the bus's watch)", async () => {
  const store = await openKvStore(":memory:");
  let confirm!: () => void;
  const watched: string[] = [];
  const unwatched: string[] = [];
  const hub = new Hub({
    maxStreamsPerUser: 5,
    interest: {
      watch(userId) {
        watched.push(userId);
        return new Promise<void>((r) => confirm = r);
      },
      unwatch: (userId) => void unwatched.push(userId),
    },
  });
  await store.placeOrder(
    "cyd",
    OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "5" }),
    new Date(),
  );
  // Every read the stream makes of the log, counted.
  let reads = 0;
  const counted = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        reads++;
        return value.apply(target, args);
      };
    },
  });
  const stream = streamOf(counted, hub, "cyd");
  const read = reader(stream);
  try {
    const opening = stream.open();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(watched, ["cyd"]);
    assert.equal(reads, 0, "read the log before the subscription was confirmed");
    confirm();
    await opening;
    assert.ok(reads > 0);
    // A second stream of the same user waits on the same watch, not a new one.
    const again = streamOf(counted, hub, "cyd");
    await again.open();
    assert.deepEqual(watched, ["cyd"]);
    again.close("client went away");
    assert.deepEqual(unwatched, []);
  } finally {
    stream.close("server shutting down");
    await read.stop();
    hub.closeAll("server shutting down");
    await store.close();
  }
  assert.deepEqual(unwatched, ["cyd"], "the last stream's end lets the subscription go");
});
