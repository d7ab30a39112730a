/**
 * The KV store's first try at a report group: decided on what this process last read or wrote
 * (store/kv/entry_cache.ts), each exec_id checked absent instead of read. What it can get wrong:
 * a stale entry (another handle on the file, or the user's own action, wrote meanwhile), a
 * duplicate exec_id it did not read, a duplicate whose order has since become final. Each must
 * end as if nothing were cached: the right state, gapless seqs, the first answer for a duplicate.
 */
import assert from "node:assert/strict";
import { ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { KvEntryCache } from "../../store/kv/entry_cache.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import type { Store } from "../../store/store.ts";

let clock = new Date("2026-12-02T09:00:00.000Z").getTime();
const tick = () => new Date(++clock);
const order = (qty = "100") =>
  OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty });
const report = (orderId: string, execId: string, type: string, fields = {}) =>
  ExecutionReport.parse({
    order_id: orderId,
    exec_id: execId,
    type,
    at: tick().toISOString(),
    ...fields,
  });
const fill = (orderId: string, execId: string, qty = "1") =>
  report(orderId, execId, "partial_fill", { last_qty: qty, last_price: "10.00" });

/** The seqs of a user's whole log, which must be 1..n. */
async function assertGapless(store: Store, userId: string): Promise<void> {
  const seqs = (await store.eventsSince(userId, 0, 1_000)).map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
}

/** A fresh in-memory store with one working order of "u1" (placed, then accepted). */
async function withWorkingOrder(
  qty: string,
  fn: (store: Store, id: string) => Promise<void>,
): Promise<void> {
  const store = await openKvStore(":memory:");
  try {
    const placed = await store.placeOrder("u1", order(qty), tick());
    await store.applyReport(report(placed.order.id, "n1", "new"), tick());
    await fn(store, placed.order.id);
  } finally {
    await store.close();
  }
}

async function withFile(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(`${dir}/blotter.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kv groups: an order changed through another handle between two reports: the next applies to it", async () => {
  await withFile(async (path) => {
    const a = await openKvStore(path);
    const b = await openKvStore(path);
    try {
      const placed = await a.placeOrder("u1", order(), tick());
      const id = placed.order.id;
      await a.applyReport(report(id, "n1", "new"), tick());
      await a.applyReport(fill(id, "f1", "10"), tick()); // a now has the order cached
      await b.applyReport(fill(id, "f2", "20"), tick()); // written behind a's back
      const third = await a.applyReport(fill(id, "f3", "30"), tick());
      assert.equal(third.duplicate, false);
      assert.equal(third.order.filled_qty, "60"); // 10 + 20 + 30: b's fill was not lost
      assert.deepEqual(await b.getOrder("u1", id), third.order);
      await assertGapless(b, "u1");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("kv groups: the user's own action between two reports moves their seq; the next report follows it", async () => {
  const store = await openKvStore(":memory:");
  try {
    const first = await store.placeOrder("u1", order(), tick());
    await store.applyReport(report(first.order.id, "n1", "new"), tick());
    await store.applyReport(fill(first.order.id, "f1"), tick()); // cached: u1 at this seq
    const second = await store.placeOrder("u1", order(), tick()); // u1's seq moves
    const filled = await store.applyReport(fill(first.order.id, "f2"), tick());
    assert.equal(filled.events[0].seq, second.events.at(-1)!.seq + 1);
    assert.equal(filled.order.filled_qty, "2");
    await assertGapless(store, "u1");
  } finally {
    await store.close();
  }
});

Deno.test("kv groups: a duplicate exec_id on a cached order answers its first result, once", async () => {
  await withWorkingOrder("100", async (store, id) => {
    const once = await store.applyReport(fill(id, "f1"), tick());
    const again = await store.applyReport(fill(id, "f1"), tick()); // exec_id not read first
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.events, once.events);
    assert.equal((await store.getOrder("u1", id))!.filled_qty, "1");
    await assertGapless(store, "u1");
  });
});

Deno.test("kv groups: a duplicate of the report that filled an order answers its first result, not a refusal", async () => {
  await withWorkingOrder("5", async (store, id) => {
    const last = await store.applyReport(fill(id, "f1", "5"), tick());
    assert.equal(last.order.status, "filled");
    const again = await store.applyReport(fill(id, "f1", "5"), tick());
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.events, last.events);
  });
});

Deno.test("kv entry cache: bounded, least recently used out first", () => {
  const cache = new KvEntryCache(2);
  cache.set(["order", "a"], 1, "v1");
  cache.set(["order", "b"], 2, "v2");
  assert.equal(cache.get<number>(["order", "a"])!.value, 1); // a is now the most recent
  cache.set(["seq", "a"], 3, "v3"); // same id, other kind: its own entry; b goes
  assert.equal(cache.size, 2);
  assert.equal(cache.get(["order", "b"]), undefined);
  assert.deepEqual(cache.get(["order", "a"]), {
    key: ["order", "a"],
    value: 1,
    versionstamp: "v1",
  });
  assert.equal(cache.get<number>(["seq", "a"])!.value, 3);
  cache.delete(["seq", "a"]);
  assert.equal(cache.get(["seq", "a"]), undefined);
});
