import assert from "node:assert/strict";
import { SubscriptionCache } from "../../store/subscription_cache.ts";

/** A lookup that counts its calls and answers what `value` holds at the time. */
function source(initial: string[]) {
  const s = {
    value: initial,
    calls: 0,
    fetch: () => {
      s.calls++;
      return Promise.resolve([...s.value]);
    },
  };
  return s;
}

Deno.test("subscription cache: a second lookup is served from memory until forgotten", async () => {
  const cache = new SubscriptionCache<string>();
  const src = source(["a"]);
  assert.deepEqual(await cache.get("u", src.fetch, true), ["a"]);
  src.value = ["a", "b"];
  assert.deepEqual(await cache.get("u", src.fetch, true), ["a"]);
  assert.equal(src.calls, 1);
  cache.forget("u");
  assert.deepEqual(await cache.get("u", src.fetch, true), ["a", "b"]);
  assert.equal(src.calls, 2);
  // Callers may change what they get without changing the cache.
  (await cache.get("u", src.fetch, true)).push("mutated");
  assert.deepEqual(await cache.get("u", src.fetch, true), ["a", "b"]);
});

Deno.test("subscription cache: a lookup that raced a change does not fill the cache", async () => {
  const cache = new SubscriptionCache<string>();
  const src = source(["old"]);
  let release!: () => void;
  const slow = async () => {
    const answer = await src.fetch(); // read before the change committed...
    await new Promise<void>((r) => (release = r));
    return answer;
  };
  const pending = cache.get("u", slow, true);
  await new Promise((r) => setTimeout(r, 0));
  src.value = ["new"];
  cache.forget("u"); // ...and the change's notice arrives while it is in flight
  release();
  assert.deepEqual(await pending, ["old"]);
  assert.deepEqual(await cache.get("u", src.fetch, true), ["new"]);
});

Deno.test("subscription cache: unusable (feed down) means always ask; clear drops all", async () => {
  const cache = new SubscriptionCache<string>();
  const src = source(["a"]);
  await cache.get("u", src.fetch, false);
  await cache.get("u", src.fetch, false);
  assert.equal(src.calls, 2);
  assert.equal(cache.size, 0);
  await cache.get("u", src.fetch, true);
  await cache.get("v", src.fetch, true);
  assert.equal(cache.size, 2);
  cache.clear();
  assert.equal(cache.size, 0);
});

Deno.test("subscription cache: entries expire after the TTL; the oldest go past the cap", async () => {
  let now = 0;
  const cache = new SubscriptionCache<string>(1_000, 2, () => now);
  const src = source(["a"]);
  await cache.get("u", src.fetch, true);
  now = 999;
  await cache.get("u", src.fetch, true);
  assert.equal(src.calls, 1);
  now = 1_000;
  await cache.get("u", src.fetch, true);
  assert.equal(src.calls, 2);
  await cache.get("v", src.fetch, true);
  await cache.get("w", src.fetch, true); // u, the oldest, goes
  assert.equal(cache.size, 2);
  await cache.get("u", src.fetch, true);
  assert.equal(src.calls, 5);
});

Deno.test("subscription cache: concurrent misses for one user share one lookup", async () => {
  const cache = new SubscriptionCache<string>();
  const src = source(["a"]);
  let release!: () => void;
  const gated = async () => {
    const answer = await src.fetch();
    await new Promise<void>((r) => (release = r));
    return answer;
  };
  const first = cache.get("u", gated, true);
  const second = cache.get("u", gated, true); // joins the lookup under way
  while (!release) await Promise.resolve();
  release();
  assert.deepEqual(await first, ["a"]);
  const shared = await second;
  assert.deepEqual(shared, ["a"]);
  assert.equal(src.calls, 1);
  // Each caller has its own copy.
  shared.push("mutated");
  assert.deepEqual(await cache.get("u", src.fetch, true), ["a"]);
});

Deno.test("subscription cache: a miss after a forget does not join the older lookup", async () => {
  const cache = new SubscriptionCache<string>();
  const src = source(["old"]);
  let release!: () => void;
  const gated = async () => {
    const answer = await src.fetch();
    await new Promise<void>((r) => (release = r));
    return answer;
  };
  const stale = cache.get("u", gated, true);
  while (!release) await Promise.resolve();
  src.value = ["new"];
  cache.forget("u"); // the change committed while the first lookup was under way
  assert.deepEqual(await cache.get("u", src.fetch, true), ["new"]);
  release();
  assert.deepEqual(await stale, ["old"]);
  assert.equal(src.calls, 2);
  assert.deepEqual(await cache.get("u", src.fetch, true), ["new"]);
});
