import assert from "node:assert/strict";
import type { Order } from "../../orders/model.ts";
import { ORDERS_PER_USER, StateCache } from "../../store/pg/state_cache.ts";

const order = (id: string, status = "new") => ({ id, status }) as unknown as Order;

Deno.test("state cache: a write from the cached seq merges; from elsewhere it starts over", () => {
  const c = new StateCache(10);
  c.learn("u", 3, 3, [order("a"), order("b")]);
  c.learn("u", 3, 4, [order("a", "partially_filled")]);
  assert.equal(c.lookup("a")?.seq, 4);
  assert.equal(c.lookup("a")?.order.status, "partially_filled");
  assert.equal(c.lookup("b")?.seq, 4); // untouched by the write from 3: still b as of 4
  c.learn("u", 6, 7, [order("c")]); // a write this cache did not see the start of
  assert.equal(c.lookup("b"), undefined);
  assert.equal(c.lookup("c")?.seq, 7);
  c.learn("u", 4, 5, [order("a", "pending_cancel")]); // older than what is cached: ignored
  assert.equal(c.lookup("a"), undefined);
  assert.equal(c.lookup("c")?.seq, 7);
});

Deno.test("state cache: bounded, the least recently used user goes first, orders with them", () => {
  const c = new StateCache(2);
  c.learn("u1", 1, 1, [order("a")]);
  c.learn("u2", 1, 1, [order("b")]);
  c.lookup("a"); // u1 used last
  c.learn("u3", 1, 1, [order("c")]);
  assert.equal(c.size, 2);
  assert.equal(c.owner("b"), undefined);
  assert.equal(c.lookup("a")?.user_id, "u1");
  c.forget("u1");
  assert.equal(c.owner("a"), undefined);
  c.clear();
  assert.equal(c.size, 0);
});

Deno.test("state cache: a final order is dropped, so one busy user cannot grow it without bound", () => {
  const c = new StateCache(10);
  c.learn("u", 1, 1, [order("a"), order("b")]);
  c.learn("u", 1, 2, [order("a", "filled")]);
  assert.equal(c.lookup("a"), undefined);
  assert.equal(c.owner("a"), undefined);
  assert.equal(c.lookup("b")?.seq, 2);
  for (let i = 0; i < 5_000; i++) c.learn("u", 2 + i, 3 + i, [order(`x${i}`, "filled")]);
  assert.equal(c.lookup("b")?.seq, 5_002, "only the working order is held");
});

Deno.test("state cache: a user with more working orders than the per-user cap is not cached", () => {
  const c = new StateCache(10);
  const many = Array.from({ length: ORDERS_PER_USER + 1 }, (_, i) => order(`w${i}`));
  c.learn("u", 1, 1, many);
  assert.equal(c.size, 0);
  assert.equal(c.owner("w0"), undefined);
});
