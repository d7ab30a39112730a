/**
 * The store contract for two instances on the same data (two store objects: two processes'
 * worth of caches, mutexes and feeds): what a writer that decides on what it last saw can get
 * wrong. Run against every backend (tests/store/kv_test.ts, tests/store/pg_test.ts).
 */
import assert from "node:assert/strict";
import { ExecutionReport, OrderRequest } from "../orders/model.ts";
import type { Store } from "../store/store.ts";
import { eventually } from "./helpers.ts";

/** How a backend's test file opens two instances on one fresh store, and disposes of them. */
export interface PairFactory {
  name: string;
  openPair(): Promise<{ a: Store; b: Store; close(): Promise<void> }>;
  ignore?: boolean;
}

let clock = new Date("2026-11-24T15:30:00.000Z").getTime();
const tick = () => new Date(++clock);
const order = (qty = "100") =>
  OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty });
const report = (orderId: string, type: string, fields: Record<string, unknown> = {}) =>
  ExecutionReport.parse({
    order_id: orderId,
    exec_id: `x-${crypto.randomUUID()}`,
    type,
    at: tick().toISOString(),
    ...fields,
  });
const fill = (orderId: string, qty = "1") =>
  report(orderId, "partial_fill", { last_qty: qty, last_price: "10" });

/** Registers the two-instance suite for one backend. */
export function instancesContract(factory: PairFactory): void {
  const test = (name: string, fn: (a: Store, b: Store) => Promise<void>) =>
    Deno.test({
      name: `${factory.name} (two instances): ${name}`,
      ignore: factory.ignore,
      async fn() {
        const pair = await factory.openPair();
        try {
          await fn(pair.a, pair.b);
        } finally {
          await pair.close();
        }
      },
    });

  test(
    "a snapshot changed by another instance between two reports: the next applies to it",
    async (a, b) => {
      const user = `u-${crypto.randomUUID()}`;
      const { order: o } = await a.placeOrder(user, order("10"), tick());
      await a.applyReport(report(o.id, "new"), tick()); // a has seen the order at seq 2
      await b.applyReport(fill(o.id, "3"), tick()); // seq 3, written by the other instance
      await b.requestCancel(user, o.id, tick()); // seq 4: pending_cancel, by the other instance
      // Straight away, whatever a has heard by now:
      const next = await a.applyReport(fill(o.id, "2"), tick());
      assert.equal(next.duplicate, false);
      assert.deepEqual(next.events.map((e) => e.seq), [5]);
      assert.equal(next.order.filled_qty, "5");
      assert.equal(next.order.status, "pending_cancel");
      const log = await b.eventsSince(user, 0, 100);
      assert.deepEqual(log.map((e) => [e.seq, e.type]), [
        [1, "pending_new"],
        [2, "new"],
        [3, "partial_fill"],
        [4, "pending_cancel"],
        [5, "partial_fill"],
      ]);
      assert.deepEqual(await b.getOrder(user, o.id), next.order);
    },
  );

  test(
    "reports racing on both instances for one order: each applied once, seqs gapless",
    async (a, b) => {
      const user = `u-${crypto.randomUUID()}`;
      const { order: o } = await a.placeOrder(user, order("100"), tick());
      await b.applyReport(report(o.id, "new"), tick());
      const reports = Array.from({ length: 40 }, () => fill(o.id));
      const answers = await Promise.all(
        reports.map((r, i) => (i % 2 === 0 ? a : b).applyReport(r, tick())),
      );
      assert.ok(answers.every((r) => !r.duplicate));
      const log = await a.eventsSince(user, 0, 1_000);
      assert.deepEqual(log.map((e) => e.seq), Array.from({ length: 42 }, (_, i) => i + 1));
      const execs = log.flatMap((e) => e.execution ? [e.execution.id] : []).sort();
      assert.deepEqual(execs, reports.map((r) => r.exec_id).sort());
      assert.equal((await a.getOrder(user, o.id))!.filled_qty, "40");
      assert.equal((await b.getOrder(user, o.id))!.filled_qty, "40");
    },
  );

  test(
    "a duplicate exec_id arriving at the other instance returns the first result",
    async (a, b) => {
      const user = `u-${crypto.randomUUID()}`;
      const { order: o } = await a.placeOrder(user, order("100"), tick());
      await a.applyReport(report(o.id, "new"), tick());
      const r = fill(o.id, "4");
      const first = await a.applyReport(r, tick()); // seq 3
      await b.applyReport(fill(o.id, "1"), tick()); // seq 4: b now knows the order as it is
      const again = await b.applyReport(r, tick());
      assert.equal(again.duplicate, true);
      assert.deepEqual(again.events, first.events);
      const back = await a.applyReport(r, tick());
      assert.equal(back.duplicate, true);
      assert.equal(await a.currentSeq(user), 4);
      assert.equal((await b.getOrder(user, o.id))!.filled_qty, "5");
    },
  );

  test("an instance's own events reach its listeners exactly once", async (a, b) => {
    const user = `u-${crypto.randomUUID()}`;
    const heard = new Map<number, number>();
    let flushed = false;
    const flushUser = `flush-${crypto.randomUUID()}`;
    const stop = a.changes.subscribe({
      events(batch) {
        for (const { user_id, event } of batch) {
          if (user_id === user) heard.set(event.seq, (heard.get(event.seq) ?? 0) + 1);
          if (user_id === flushUser) flushed = true;
        }
      },
      sessionRevoked() {},
      connected() {},
      disconnected() {},
    });
    try {
      const { order: o } = await a.placeOrder(user, order("100"), tick());
      await a.applyReport(report(o.id, "new"), tick());
      await Promise.all(Array.from({ length: 10 }, () => a.applyReport(fill(o.id), tick())));
      await a.requestCancel(user, o.id, tick());
      await a.applyReport(report(o.id, "canceled"), tick());
      const seq = await a.currentSeq(user);
      assert.equal(seq, 14);
      if (a.kind === "postgres") {
        // Whatever a's feed will ever echo of its own writes arrives before the NOTIFY of a later
        // commit by b: once a hears that, every echo of its own has come (and was skipped). On the
        // bus, a hears b's writes for a user only while it watches them.
        await a.changes.watch?.(flushUser);
        await b.placeOrder(flushUser, order(), tick());
        await eventually(() => flushed);
      }
      assert.deepEqual(
        [...heard].sort(([x], [y]) => x - y),
        Array.from({ length: seq }, (_, i) => [i + 1, 1]),
      );
    } finally {
      stop();
    }
  });
}
