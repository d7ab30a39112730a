/**
 * Snapshots' and events' JSON made once (orders/json.ts) and the texts written out from it (the
 * NOTIFY payloads): the same text JSON.stringify writes, whatever the content.
 */
import assert from "node:assert/strict";
import { jsonList, jsonOf } from "../../orders/json.ts";
import type { OrderEvent } from "../../orders/model.ts";
import { type Notice, notices } from "../../store/pg/notices.ts";
import type { PgContext } from "../../store/pg/connect.ts";

const order = {
  id: "0193a0b0-1111-7222-8333-444455556666",
  client_order_id: `a"b\\c{d}`,
  symbol: "AAPL",
  status: "partially_filled",
  reason: "ünïcödé \u2028 \x1e",
};
const event = (seq: number) =>
  ({ seq, type: "partial_fill", at: "2026-12-02T09:00:00.000Z", order }) as unknown as OrderEvent;

Deno.test("json: the text of a snapshot or event, and of a list of them, is JSON.stringify's", () => {
  const events = [event(1), event(2)];
  assert.equal(jsonOf(events[0]), JSON.stringify(events[0]));
  assert.equal(jsonOf(events[0]), jsonOf(events[0])); // made once, the same after
  assert.equal(jsonList(events), JSON.stringify(events));
  assert.equal(jsonList([]), "[]");
});

Deno.test("json: NOTIFY payloads written from event texts are what the listener parses", () => {
  const ctx = { instance: "abc123|", maxNotifyBytes: 7_900 } as unknown as PgContext;
  const one = new Map([[`us"er\\1`, [event(1), event(2)]]]);
  const [single] = notices(ctx, one);
  assert.ok(single.startsWith("abc123|"));
  assert.deepEqual(
    JSON.parse(single.slice(7)),
    { k: "ev", u: `us"er\\1`, e: one.get(`us"er\\1`)! } satisfies Notice,
  );
  assert.equal(
    single.slice(7),
    JSON.stringify({ k: "ev", u: `us"er\\1`, e: [event(1), event(2)] }),
  );
  const two = new Map([["u1", [event(3)]], ["u2", [event(4)]]]);
  const [group] = notices(ctx, two);
  assert.equal(
    group.slice(7),
    JSON.stringify({ k: "evs", g: [{ u: "u1", e: [event(3)] }, { u: "u2", e: [event(4)] }] }),
  );
  // Past the limit, a user's seqs only.
  const small = { instance: "abc123|", maxNotifyBytes: 100 } as unknown as PgContext;
  assert.deepEqual(JSON.parse(notices(small, one)[0].slice(7)), {
    k: "ids",
    u: `us"er\\1`,
    s: [1, 2],
  });
});
