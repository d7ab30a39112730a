/**
 * The write gate (store/write_gate.ts): the one door every report and order action goes through,
 * on both stores. It refuses past WRITE_QUEUE_LIMIT and turns a full disk into a 503, counted and
 * logged once, with readiness back by itself once a write (its own probe) succeeds.
 */
import assert from "node:assert/strict";
import { AppError } from "../../orders/errors.ts";
import { isDiskFull, probeValue, WriteGate } from "../../store/write_gate.ts";
import type { Logger } from "../../log.ts";

const kvFull = () => new TypeError("database or disk is full");
const pgFull = () =>
  Object.assign(new Error('could not extend file "base/5/16410": No space left on device'), {
    code: "53100",
  });

Deno.test("isDiskFull: KV's SQLite and Postgres' words for it, and nothing else", () => {
  assert.ok(isDiskFull(kvFull()));
  assert.ok(isDiskFull(pgFull()));
  assert.ok(isDiskFull({ code: "53100" }));
  assert.ok(!isDiskFull(new Error("duplicate key value violates unique constraint")));
  assert.ok(!isDiskFull({ code: "53300" }), "too many connections is not a full disk");
  assert.ok(!isDiskFull(undefined));
});

Deno.test("WriteGate: past the limit, a 503 before the write is even tried", async () => {
  const gate = new WriteGate({ limit: 1 });
  let release!: () => void;
  const first = gate.run(() => new Promise<void>((r) => (release = r)));
  let tried = false;
  await assert.rejects(
    gate.run(() => Promise.resolve(void (tried = true))),
    (e: AppError) => e.status === 503,
  );
  assert.ok(!tried);
  release();
  await first;
  assert.equal(gate.inFlight, 0);
});

Deno.test("WriteGate: a full disk is a 503 with a Retry-After, counted, logged once", async () => {
  const lines: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: (m) => lines.push(m),
    warn: (m) => lines.push(m),
    error: (m) => lines.push(m),
    with: () => log,
  };
  let full = true;
  const gate = new WriteGate({
    log,
    probe: () => (full ? Promise.reject(kvFull()) : Promise.resolve()),
  });
  for (let i = 0; i < 50; i++) {
    await assert.rejects(gate.run(() => Promise.reject(i % 2 ? kvFull() : pgFull())), (e) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.status, 503);
      assert.ok((e.details as { retry_after_s: number }).retry_after_s >= 1);
      return true;
    });
  }
  // Another failure passes through as it is: only a full disk is answered for here.
  await assert.rejects(gate.run(() => Promise.reject(new RangeError("a bug"))), RangeError);
  assert.equal(gate.refusedDiskFull, 50);
  assert.equal(await gate.unwritable(), "the store's disk is full");
  assert.equal(gate.refusedDiskFull, 50, "the probe counted as a refused write");
  // A small write that still finds room does not end the episode: only the probe may.
  await gate.run(() => Promise.resolve());
  assert.equal(await gate.unwritable(), "the store's disk is full");
  assert.equal(lines.length, 1, "the episode was logged per write");

  full = false; // space is freed; no write comes (a load balancer took the instance out)
  await new Promise((r) => setTimeout(r, 1_050)); // the probe runs at most once a second
  assert.equal(await gate.unwritable(), null, "readiness did not come back by itself");
  assert.deepEqual(lines, [lines[0], "the store takes writes again"]);
});

Deno.test("probeValue: large and incompressible, so it needs fresh pages as real writes do", () => {
  const a = probeValue();
  assert.ok(a.length >= 32_000);
  assert.notEqual(a, probeValue());
});
