/**
 * Ingest refusals, through `app.request()`: a batch answers one status per report even when
 * some are refused for overload (503 in its results, Retry-After on the 200), and a server with
 * ingest disabled says so without a Retry-After (waiting does not help).
 */
import assert from "node:assert/strict";
import { api, INGEST_TOKEN, login, send, startInProcess, type Target } from "../helpers.ts";

const ORDER = { symbol: "AAPL", asset_class: "stock", side: "buy", qty: "10" };

function ingest(target: Target, body: unknown): Promise<Response> {
  return send(target, "/api/v1/executions", {
    method: "POST",
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("ingest: a batch past WRITE_QUEUE_LIMIT answers 503 per refused report, 200 overall", async () => {
  // One write at a time: the batch's reports for different orders go at once, so the first is
  // taken and the other two are refused before anything of theirs is queued.
  const s = await startInProcess({ WRITE_QUEUE_LIMIT: "1" });
  try {
    const { token } = await login(s, "erin");
    const orders: string[] = [];
    for (let i = 0; i < 3; i++) {
      orders.push((await api(s, token, "POST", "/api/v1/orders", ORDER)).json.id);
    }
    const at = new Date().toISOString();
    const reports = orders.map((order_id, i) => ({ order_id, exec_id: `n-${i}`, type: "new", at }));
    const res = await ingest(s, reports);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("retry-after"), "1");
    const { results } = await res.json();
    assert.deepEqual(results.map((r: { status: number }) => r.status), [201, 503, 503]);
    assert.equal(results[1].error.code, "unavailable");

    // The venue sends the refused ones again, one by one: each applies once; the first stays once.
    for (const i of [1, 2]) assert.equal((await ingest(s, reports[i])).status, 201);
    for (const id of orders) {
      const events = await api(s, token, "GET", `/api/v1/orders/${id}/events`);
      assert.deepEqual(events.json.events.map((e: { type: string }) => e.type), [
        "pending_new",
        "new",
      ]);
    }
  } finally {
    await s.stop();
  }
});

Deno.test("ingest: disabled (no INGEST_TOKEN) is a 503 without Retry-After", async () => {
  const s = await startInProcess({ INGEST_TOKEN: "" });
  try {
    const res = await ingest(s, { order_id: "x", exec_id: "x", type: "new" });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), null);
    assert.match((await res.json()).error.message, /disabled/);
  } finally {
    await s.stop();
  }
});
