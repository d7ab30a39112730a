/**
 * The store contract: one suite, run against every backend (tests/store/kv_test.ts and
 * tests/store/pg_test.ts). A backend is correct when it passes all of it.
 */
import assert from "node:assert/strict";
import { AppError } from "../orders/errors.ts";
import { uuidv7 } from "../orders/ids.ts";
import { ExecutionReport, OrderRequest, type UserEvent } from "../orders/model.ts";
import type { ApplyResult, Store } from "../store/store.ts";

/** How a backend's test file opens a fresh, empty store and disposes of it. */
export interface StoreFactory {
  name: string;
  open(): Promise<Store>;
  /** Skip reason when the backend is unavailable here (null: run). */
  ignore?: boolean;
}

const T0 = new Date("2026-11-24T14:30:00.000Z");
let clock = T0.getTime();
/** A clock that moves 1 ms per call, so timestamps and UUIDv7 ids increase. */
const tick = () => new Date(++clock);

function req(fields: Record<string, unknown> = {}) {
  return OrderRequest.parse({
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    qty: "10",
    ...fields,
  });
}

function report(orderId: string, type: string, fields: Record<string, unknown> = {}) {
  return ExecutionReport.parse({
    order_id: orderId,
    exec_id: `x-${crypto.randomUUID()}`,
    type,
    at: tick().toISOString(),
    ...fields,
  });
}

async function refusedWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err) => err instanceof AppError && err.code === code);
}

/** Registers the contract suite for one backend. */
export function storeContract(factory: StoreFactory): void {
  const test = (name: string, fn: (store: Store) => Promise<void>) => {
    const withStore = async () => {
      const store = await factory.open();
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    };
    const fullName = `${factory.name}: ${name}`;
    Deno.test({ name: fullName, ignore: factory.ignore, fn: withStore });
  };

  test("placing an order appends pending_new as the user's seq 1, 2, 3", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    assert.equal(await store.currentSeq(user), 0);
    const a = await store.placeOrder(user, req(), tick());
    const b = await store.placeOrder(user, req({ symbol: "MSFT" }), tick());
    assert.equal(a.created, true);
    assert.equal(a.order.status, "pending_new");
    assert.deepEqual(a.events.map((e) => [e.seq, e.type]), [[1, "pending_new"]]);
    assert.equal(b.events[0].seq, 2);
    assert.equal(await store.currentSeq(user), 2);
    assert.deepEqual(await store.getOrder(user, a.order.id), a.order);
  });

  test("the same client_order_id returns the first order and writes nothing", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const a = await store.placeOrder(user, req({ client_order_id: "c-1" }), tick());
    const again = await store.placeOrder(user, req({ client_order_id: "c-1", qty: "5" }), tick());
    assert.equal(again.created, false);
    assert.equal(again.order.id, a.order.id);
    assert.equal(again.order.qty, "10");
    assert.equal(await store.currentSeq(user), 1);
    // Another user may use the same client id.
    const other = await store.placeOrder(
      `v-${crypto.randomUUID()}`,
      req({ client_order_id: "c-1" }),
      tick(),
    );
    assert.equal(other.created, true);
  });

  test("a report applies atomically and a repeated exec_id returns the first result", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const { order } = await store.placeOrder(user, req(), tick());
    await store.applyReport(report(order.id, "new"), tick());
    const fill = report(order.id, "partial_fill", { last_qty: "4", last_price: "187.12" });
    const first = await store.applyReport(fill, tick());
    assert.equal(first.duplicate, false);
    assert.equal(first.order.status, "partially_filled");
    assert.equal(first.order.filled_qty, "4");
    assert.equal(first.events[0].seq, 3);
    assert.deepEqual(first.events[0].execution, {
      id: fill.exec_id,
      qty: "4",
      price: "187.12",
      at: fill.at,
    });
    const again = await store.applyReport(fill, tick());
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.events, first.events);
    assert.deepEqual(again.order, first.order);
    assert.equal(await store.currentSeq(user), 3);
    const last = await store.applyReport(
      report(order.id, "fill", { last_qty: "6", last_price: "187.5" }),
      tick(),
    );
    assert.equal(last.order.status, "filled");
    assert.equal(last.order.filled_qty, "10");
    assert.equal(last.order.filled_avg_price, "187.348");
  });

  test("an illegal report or an unknown order is refused and writes nothing", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const { order } = await store.placeOrder(user, req(), tick());
    await store.applyReport(report(order.id, "rejected", { reason: "unknown symbol" }), tick());
    await refusedWith(store.applyReport(report(order.id, "new"), tick()), "illegal_transition");
    await refusedWith(
      store.applyReport(report(order.id, "fill", { last_qty: "10", last_price: "1" }), tick()),
      "illegal_transition",
    );
    await refusedWith(store.applyReport(report(uuidv7(), "new"), tick()), "not_found");
    assert.equal(await store.currentSeq(user), 2);
    const stored = await store.getOrder(user, order.id);
    assert.equal(stored?.status, "rejected");
    assert.equal(stored?.reject_reason, "unknown symbol");
  });

  test("an overfill is refused and the order is unharmed", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const { order } = await store.placeOrder(user, req({ qty: "1.5" }), tick());
    await store.applyReport(report(order.id, "new"), tick());
    await store.applyReport(
      report(order.id, "partial_fill", { last_qty: "1", last_price: "10" }),
      tick(),
    );
    await refusedWith(
      store.applyReport(
        report(order.id, "partial_fill", { last_qty: "0.6", last_price: "10" }),
        tick(),
      ),
      "illegal_transition",
    );
    assert.equal((await store.getOrder(user, order.id))?.filled_qty, "1");
  });

  test("cancel: pending_cancel, then canceled; a final order is a conflict", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const { order } = await store.placeOrder(
      user,
      req({ type: "limit", limit_price: "1.00" }),
      tick(),
    );
    await store.applyReport(report(order.id, "new"), tick());
    const pending = await store.requestCancel(user, order.id, tick());
    assert.equal(pending.order.status, "pending_cancel");
    // Asking twice changes nothing.
    const twice = await store.requestCancel(user, order.id, tick());
    assert.equal(twice.events.length, 0);
    await store.applyReport(report(order.id, "canceled"), tick());
    await refusedWith(store.requestCancel(user, order.id, tick()), "conflict");
    await refusedWith(
      store.requestCancel(`v-${crypto.randomUUID()}`, order.id, tick()),
      "not_found",
    );
    const events = await store.orderEvents(user, order.id);
    assert.deepEqual(events.map((e) => e.type), [
      "pending_new",
      "new",
      "pending_cancel",
      "canceled",
    ]);
    assert.deepEqual(await store.orderEvents(`v-${crypto.randomUUID()}`, order.id), []);
  });

  test("replace: the old order ends replaced and a new one carries the terms", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const { order } = await store.placeOrder(
      user,
      req({ type: "limit", limit_price: "100" }),
      tick(),
    );
    await store.applyReport(report(order.id, "new"), tick());
    const pending = await store.requestReplace(user, order.id, { qty: "20" }, tick());
    assert.equal(pending.order.status, "pending_replace");
    assert.deepEqual(pending.events[0].requested, { qty: "20" });
    const done = await store.applyReport(report(order.id, "replaced", { qty: "20" }), tick());
    assert.deepEqual(done.events.map((e) => e.type), ["replaced", "new"]);
    const replacement = done.events[1].order;
    assert.equal(replacement.qty, "20");
    assert.equal(replacement.replaces, order.id);
    assert.equal((await store.getOrder(user, order.id))?.replaced_by, replacement.id);
    assert.equal((await store.getOrder(user, replacement.id))?.status, "new");
    assert.equal(await store.orderOwner(replacement.id), user);
  });

  test("orders list newest first with a cursor and a status filter", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await store.placeOrder(user, req(), tick())).order.id);
    await store.applyReport(report(ids[1], "rejected", { reason: "no" }), tick());
    await store.applyReport(report(ids[4], "rejected", { reason: "no" }), tick());
    await store.placeOrder(`v-${crypto.randomUUID()}`, req(), tick());

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await store.listOrders(user, { status: "all", limit: 3, cursor });
      seen.push(...page.orders.map((o) => o.id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, [...ids].reverse());
    const open = await store.listOrders(user, { status: "open", limit: 50 });
    assert.deepEqual(open.orders.map((o) => o.id), [6, 5, 3, 2, 0].map((i) => ids[i]));
    assert.equal(open.next_cursor, null);
    const closed = await store.listOrders(user, { status: "closed", limit: 50 });
    assert.deepEqual(closed.orders.map((o) => o.id), [ids[4], ids[1]]);
    await refusedWith(
      store.listOrders(user, { status: "all", limit: 3, cursor: "nonsense" }),
      "invalid_request",
    );
  });

  test("eventsSince resumes after a seq; eventsSinceMany serves many users", async (store) => {
    const a = `u-${crypto.randomUUID()}`, b = `v-${crypto.randomUUID()}`;
    for (let i = 0; i < 5; i++) await store.placeOrder(a, req(), tick());
    for (let i = 0; i < 2; i++) await store.placeOrder(b, req(), tick());
    assert.deepEqual((await store.eventsSince(a, 2, 100)).map((e) => e.seq), [3, 4, 5]);
    assert.deepEqual((await store.eventsSince(a, 0, 2)).map((e) => e.seq), [1, 2]);
    assert.deepEqual(await store.eventsSince(a, 5, 100), []);
    const many = await store.eventsSinceMany([{ user_id: a, after_seq: 3 }, {
      user_id: b,
      after_seq: 0,
    }], 100);
    assert.deepEqual(
      many.map((u) => `${u.user_id === a ? "a" : "b"}${u.event.seq}`).sort(),
      ["a4", "a5", "b1", "b2"],
    );
    assert.equal(await store.oldestSeq(a), 1);
    assert.equal(await store.oldestSeq(`w-${crypto.randomUUID()}`), null);
  });

  test("1000 concurrent writes for one user get seq 1..1000 with no gap", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const heard: number[] = [];
    const off = store.changes.subscribe({
      events: (evs: UserEvent[]) =>
        evs.forEach((e) => e.user_id === user && heard.push(e.event.seq)),
      sessionRevoked() {},
      connected() {},
      disconnected() {},
    });
    const { order } = await store.placeOrder(user, req({ qty: "1000" }), tick());
    await store.applyReport(report(order.id, "new"), tick());
    await Promise.all(
      Array.from(
        { length: 998 },
        () =>
          store.applyReport(
            report(order.id, "partial_fill", { last_qty: "1", last_price: "2.5" }),
            tick(),
          ),
      ),
    );
    const events = await store.eventsSince(user, 0, 2000);
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: 1000 }, (_, i) => i + 1));
    assert.equal((await store.getOrder(user, order.id))?.filled_qty, "998");
    // The change feed delivers the same seqs in order (Postgres: give NOTIFY a moment).
    for (let i = 0; i < 100 && heard.length < 1000; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    off();
    assert.deepEqual(heard, events.map((e) => e.seq));
  });

  test("reports handed in together for many users each get their own answer", async (store) => {
    // Postgres commits concurrent reports in groups; a group mixes good reports, a repeated
    // exec_id, an unknown order, an illegal transition and a replace followed by a fill of the
    // replacement, and every caller must still get exactly its own result.
    const users = Array.from({ length: 6 }, () => `u-${crypto.randomUUID()}`);
    const placed = await Promise.all(
      users.map((u) => store.placeOrder(u, req({ qty: "10" }), tick())),
    );
    await Promise.all(placed.map((p) => store.applyReport(report(p.order.id, "new"), tick())));
    const limit = await store.placeOrder(
      users[0],
      req({ type: "limit", limit_price: "5" }),
      tick(),
    );
    await store.applyReport(report(limit.order.id, "new"), tick());
    await store.requestReplace(users[0], limit.order.id, { limit_price: "6" }, tick());
    const dup = report(placed[1].order.id, "partial_fill", { last_qty: "1", last_price: "2" });
    const replaced = report(limit.order.id, "replaced", { limit_price: "6" });
    const calls = [
      ...placed.map((p) => report(p.order.id, "partial_fill", { last_qty: "2", last_price: "3" })),
      dup,
      dup,
      report(crypto.randomUUID(), "new"),
      report(placed[2].order.id, "new"),
      replaced,
    ].map((r) => store.applyReport(r, tick()).then((v) => v, (e: AppError) => e));
    const answers = await Promise.all(calls);
    answers.slice(0, 6).forEach((a, i) => {
      assert.ok(!(a instanceof Error), String(a));
      assert.equal(a.user_id, users[i]);
      assert.equal(a.order.id, placed[i].order.id);
    });
    const [first, second] = [answers[6], answers[7]] as ApplyResult[];
    assert.deepEqual([first.duplicate, second.duplicate].sort(), [false, true]);
    assert.deepEqual(first.events.map((e) => e.seq), second.events.map((e) => e.seq));
    assert.equal((answers[8] as AppError).code, "not_found");
    assert.equal((answers[9] as AppError).code, "illegal_transition");
    const swap = answers[10] as ApplyResult;
    const replacement = swap.events.find((e) => e.order.replaces === limit.order.id)!.order;
    const filled = await store.applyReport(
      report(replacement.id, "fill", { last_qty: replacement.qty, last_price: "6" }),
      tick(),
    );
    assert.equal(filled.order.status, "filled");
    // Each user's log is gapless and holds exactly what was answered.
    for (const u of users) {
      const seqs = (await store.eventsSince(u, 0, 100)).map((e) => e.seq);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, k) => k + 1), u);
    }
    assert.equal((await store.getOrder(users[1], placed[1].order.id))?.filled_qty, "3");
  });

  test("an alert is claimed once, by whoever asks first", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const claims = await Promise.all([1, 2, 3].map(() => store.claimAlert(user, 7, tick())));
    assert.deepEqual(claims.filter(Boolean).length, 1);
    assert.equal(await store.claimAlert(user, 8, tick()), true);
  });

  test("pruning drops old events but never a user's latest", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const old = new Date("2020-01-01T00:00:00.000Z");
    await store.placeOrder(user, req(), old);
    await store.placeOrder(user, req(), new Date(old.getTime() + 1));
    await store.placeOrder(user, req(), new Date(old.getTime() + 2));
    const pruned = await store.pruneEvents(new Date("2021-01-01T00:00:00.000Z"));
    assert.ok(pruned >= 2);
    assert.equal(await store.oldestSeq(user), 3);
    assert.equal(await store.currentSeq(user), 3);
  });

  test("working orders are the ones not final", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const a = await store.placeOrder(user, req(), tick());
    const b = await store.placeOrder(user, req(), tick());
    await store.applyReport(report(a.order.id, "rejected", { reason: "x" }), tick());
    const working = (await store.workingOrders(10_000)).map((w) => w.order.id);
    assert.ok(working.includes(b.order.id));
    assert.ok(!working.includes(a.order.id));
  });

  test("sessions: created with a token hash, listed, revoked with their push subscriptions", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const now = tick().toISOString();
    const s1 = await store.createSession({
      id: crypto.randomUUID(),
      user_id: user,
      label: "a",
      created_at: now,
    }, `h-${crypto.randomUUID()}`);
    const hash = `h-${crypto.randomUUID()}`;
    const s2 = await store.createSession({
      id: crypto.randomUUID(),
      user_id: user,
      label: "b",
      created_at: tick().toISOString(),
    }, hash);
    assert.equal((await store.sessionByTokenHash(hash))?.id, s2.id);
    assert.equal(await store.sessionByTokenHash("nope"), null);
    assert.deepEqual((await store.listSessions(user)).map((s) => s.id), [s2.id, s1.id]);
    await store.addPushSubscription({
      endpoint: "https://push.example/1",
      keys: { p256dh: "p", auth: "a" },
      user_id: user,
      session_id: s2.id,
      created_at: now,
    });
    const revokedIds: string[] = [];
    const off = store.changes.subscribe({
      events() {},
      sessionRevoked: (id) => revokedIds.push(id),
      connected() {},
      disconnected() {},
    });
    assert.equal(await store.revokeSession(`v-${crypto.randomUUID()}`, s2.id, tick()), false);
    assert.equal(await store.revokeSession(user, s2.id, tick()), true);
    assert.equal(await store.revokeSession(user, s2.id, tick()), false);
    assert.ok((await store.sessionByTokenHash(hash))?.revoked_at);
    assert.deepEqual((await store.listSessions(user)).map((s) => s.id), [s1.id]);
    assert.deepEqual(await store.listPushSubscriptions(user), []);
    // A subscribe that raced the sign-out and landed just after it is never used.
    await store.addPushSubscription({
      endpoint: "https://push.example/late",
      keys: { p256dh: "p", auth: "a" },
      user_id: user,
      session_id: s2.id,
      created_at: tick().toISOString(),
    });
    assert.deepEqual(await store.listPushSubscriptions(user), []);
    // The revoke reaches listeners through NOTIFY on Postgres: wait for it with a deadline that a
    // loaded machine cannot miss (10 s), not a guess at how fast it comes.
    for (let i = 0; i < 200 && revokedIds.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    off();
    assert.deepEqual(revokedIds, [s2.id]);
    const ensured = await store.ensureSession({
      id: "sid-1-" + user,
      user_id: user,
      label: "jwt",
      created_at: now,
    });
    assert.equal((await store.ensureSession({ ...ensured, label: "other" })).label, "jwt");
  });

  test("push subscriptions are per endpoint and per user; settings keep the first value", async (store) => {
    const user = `u-${crypto.randomUUID()}`, other = `v-${crypto.randomUUID()}`;
    const sub = {
      endpoint: `https://push.example/${crypto.randomUUID()}`,
      keys: { p256dh: "p", auth: "a" },
      user_id: user,
      session_id: "s",
      created_at: tick().toISOString(),
    };
    await store.addPushSubscription(sub);
    await store.addPushSubscription(sub);
    assert.equal((await store.listPushSubscriptions(user)).length, 1);
    assert.equal(await store.removePushSubscription(other, sub.endpoint), false);
    assert.equal((await store.listPushSubscriptions(user)).length, 1);
    await store.removePushSubscriptionByEndpoint(sub.endpoint);
    assert.deepEqual(await store.listPushSubscriptions(user), []);
    // Each change is seen by the next lookup, however the list was read before (the Postgres
    // store caches it per user).
    await store.addPushSubscription(sub);
    assert.equal((await store.listPushSubscriptions(user)).length, 1);
    assert.equal(await store.removePushSubscription(user, sub.endpoint), true);
    assert.deepEqual(await store.listPushSubscriptions(user), []);
    await store.addPushSubscription(sub);
    assert.equal((await store.listPushSubscriptions(user)).length, 1);
    assert.deepEqual(await store.listPushSubscriptions(other), []);
    // The same browser endpoint now signed in as another user moves to them.
    await store.addPushSubscription({ ...sub, user_id: other });
    assert.deepEqual(await store.listPushSubscriptions(user), []);
    assert.equal((await store.listPushSubscriptions(other)).length, 1);
    await store.removePushSubscriptionByEndpoint(sub.endpoint);
    assert.deepEqual(await store.listPushSubscriptions(other), []);
    const key = `k-${crypto.randomUUID()}`;
    assert.equal(await store.getSetting(key), null);
    assert.equal(await store.setSettingIfAbsent(key, "first"), "first");
    assert.equal(await store.setSettingIfAbsent(key, "second"), "first");
    assert.equal(await store.ping(), true);
  });

  test("push devices: one row per token; the same session again is unchanged; another session or user takes it", async (store) => {
    const user = `u-${crypto.randomUUID()}`, other = `v-${crypto.randomUUID()}`;
    // As long as CONTRACT allows (4,096) and random, so it does not compress: a btree entry holds
    // ~2,700 bytes, so a store that indexes the token itself fails here.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:.-";
    const token = Array.from(
      crypto.getRandomValues(new Uint8Array(4096)),
      (b) => alphabet[b % alphabet.length],
    ).join("");
    const device = {
      token,
      platform: "fcm" as const,
      user_id: user,
      session_id: "s1",
      created_at: tick().toISOString(),
    };
    assert.equal(await store.addPushDevice(device), "created");
    assert.equal(
      await store.addPushDevice({ ...device, created_at: tick().toISOString() }),
      "unchanged",
    );
    assert.deepEqual(await store.listPushDevices(user), [device], "first registration kept");
    // Another session of the same user: it moves there.
    assert.equal(await store.addPushDevice({ ...device, session_id: "s2" }), "moved");
    assert.deepEqual((await store.listPushDevices(user)).map((d) => d.session_id), ["s2"]);
    // Another user: it leaves the first user's list.
    assert.equal(
      await store.addPushDevice({ ...device, user_id: other, session_id: "s3" }),
      "moved",
    );
    assert.deepEqual(await store.listPushDevices(user), []);
    assert.deepEqual((await store.listPushDevices(other)).map((d) => d.session_id), ["s3"]);
    // Only its holder removes it by token and user; the push service's answer removes it anyway.
    assert.equal(await store.removePushDevice(user, token), false);
    assert.equal((await store.listPushDevices(other)).length, 1);
    assert.equal(await store.removePushDevice(other, token), true);
    assert.deepEqual(await store.listPushDevices(other), []);
    assert.equal(await store.addPushDevice({ ...device, platform: "apns" }), "created");
    assert.equal((await store.listPushDevices(user))[0].platform, "apns");
    await store.removePushDeviceByToken(token);
    assert.deepEqual(await store.listPushDevices(user), []);
    // Two racing registrations of one token end with exactly one owner.
    const racers = Array.from({ length: 6 }, (_, i) => ({
      ...device,
      user_id: i % 2 ? user : other,
      session_id: `r${i}`,
    }));
    await Promise.all(racers.map((d) => store.addPushDevice(d)));
    const owners = [...await store.listPushDevices(user), ...await store.listPushDevices(other)];
    assert.equal(owners.length, 1);
  });

  test("push devices: revoking a session deletes its tokens; one registered after the revoke is never used", async (store) => {
    const user = `u-${crypto.randomUUID()}`;
    const session = await store.createSession({
      id: crypto.randomUUID(),
      user_id: user,
      label: "phone",
      created_at: tick().toISOString(),
    }, `h-${crypto.randomUUID()}`);
    const keep = await store.createSession({
      id: crypto.randomUUID(),
      user_id: user,
      label: "tablet",
      created_at: tick().toISOString(),
    }, `h-${crypto.randomUUID()}`);
    const at = tick().toISOString();
    const mk = (token: string, session_id: string) => ({
      token,
      platform: "apns" as const,
      user_id: user,
      session_id,
      created_at: at,
    });
    await store.addPushDevice(mk(`a-${crypto.randomUUID()}`, session.id));
    await store.addPushDevice(mk(`b-${crypto.randomUUID()}`, session.id));
    const kept = mk(`c-${crypto.randomUUID()}`, keep.id);
    await store.addPushDevice(kept);
    assert.equal((await store.listPushDevices(user)).length, 3);
    assert.equal(await store.revokeSession(null, session.id, tick()), true);
    assert.deepEqual(await store.listPushDevices(user), [kept]);
    await store.addPushDevice(mk(`late-${crypto.randomUUID()}`, session.id));
    assert.deepEqual(await store.listPushDevices(user), [kept]);
  });
}
