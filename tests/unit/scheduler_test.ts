/**
 * The venue's report queue under overload: a report the store answers `unavailable` (503, as the
 * write gate does past WRITE_QUEUE_LIMIT) goes again with the same exec_id, and is applied once.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { AppError } from "../../orders/errors.ts";
import { type ExecutionReport, OrderRequest } from "../../orders/model.ts";
import { openKvStore } from "../../store/kv/mod.ts";
import { scheduler } from "../../venue/scheduler.ts";

Deno.test("venue: a report refused as unavailable is retried with its exec_id and applied once", async () => {
  const store = await openKvStore(":memory:");
  try {
    const placed = await store.placeOrder(
      "u1",
      OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" }),
      new Date(),
    );
    const tries: string[] = [];
    // The real store behind a door that is shut for the first two tries, as under overload.
    const overloaded = {
      applyReport(report: ExecutionReport, now: Date) {
        tries.push(report.exec_id);
        if (tries.length <= 2) {
          return Promise.reject(new AppError("unavailable", "Too many writes waiting; try again"));
        }
        return store.applyReport(report, now);
      },
    };
    const venue = scheduler({
      store: overloaded,
      log: silentLogger,
      speed: 1,
      random: Math.random,
    });
    const order = await venue.report(placed.order.id, "new");
    await venue.stop();

    assert.equal(order?.status, "new");
    assert.equal(tries.length, 3);
    assert.equal(new Set(tries).size, 1, "every try carries the same exec_id");
    const events = await store.orderEvents("u1", placed.order.id);
    assert.deepEqual(events.map((e) => e.type), ["pending_new", "new"]);
  } finally {
    await store.close();
  }
});

Deno.test("venue: stopping does not wait out a retry pause", async () => {
  const store = await openKvStore(":memory:");
  try {
    const placed = await store.placeOrder(
      "u1",
      OrderRequest.parse({ symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" }),
      new Date(),
    );
    let tries = 0;
    const away = {
      applyReport() {
        tries++;
        firstTry();
        return Promise.reject(new AppError("unavailable", "The database is unavailable"));
      },
    };
    let firstTry!: () => void;
    const tried = new Promise<void>((r) => (firstTry = r));
    const venue = scheduler({ store: away, log: silentLogger, speed: 1, random: Math.random });
    const answer = venue.report(placed.order.id, "new");
    await tried; // the report met the store once and is pausing before its retry
    await venue.stop(); // resolves: the pause wakes, the loop sees `stopped` and gives up
    assert.equal(await answer, null);
    assert.ok(tries < 10, "it did not run through every retry");
  } finally {
    await store.close();
  }
});
