/**
 * The one decision every group write path makes (store/report_group.ts: Postgres' fast
 * statement and locked path, KV's groups), table-driven: what each report of a group is answered
 * and what the group writes, from the state before it.
 */
import assert from "node:assert/strict";
import { newOrder, requestReplace } from "../../orders/lifecycle.ts";
import { ExecutionReport, type Order, OrderRequest } from "../../orders/model.ts";
import { decideGroup, type GroupLookup } from "../../store/report_group.ts";

const NOW = new Date("2026-12-07T10:00:00Z");

function order(id: string, status: Order["status"], qty = "100"): Order {
  const request = OrderRequest.parse({
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    type: "limit",
    limit_price: "187.41",
    qty,
  });
  return { ...newOrder(request, id, NOW).order, status };
}

function report(orderId: string, execId: string, type: string, fields = {}) {
  return ExecutionReport.parse({
    order_id: orderId,
    exec_id: execId,
    type,
    at: NOW.toISOString(),
    ...fields,
  });
}

/** An order whose replace the user asked for: the venue's `replaced` is what it waits for. */
function pendingReplace(o: Order): Order {
  const outcome = requestReplace(o, { qty: "150" }, NOW);
  if ("refused" in outcome) throw new Error(outcome.refused);
  return outcome.order;
}

const fill = (qty: string) => ({ last_qty: qty, last_price: "187.41" });

const A = "0193a0a0-0000-7000-8000-00000000000a";
const B = "0193a0a0-0000-7000-8000-00000000000b";
const GONE = "0193a0a0-0000-7000-8000-0000000000ff";

/** The state before the group: ann owns A (working) and B; ann's seq is 10; "x-old" is stored. */
function lookup(b: Order): GroupLookup<string> {
  const orders = new Map([[A, order(A, "new")], [B, b]]);
  return {
    order: (id) => orders.has(id) ? { user_id: "ann", order: orders.get(id)! } : undefined,
    seq: (user) => (user === "ann" ? 10 : 0),
    firstTime: (execId) => (execId === "x-old" ? "the first result of x-old" : undefined),
  };
}

interface Case {
  name: string;
  b?: Order;
  reports: ReturnType<typeof report>[];
  /** Each report's decision kind, in order. */
  kinds: string[];
  /** ann's new events' seqs and types. */
  events: Array<[number, string]>;
  /** Executions written, by exec_id. */
  executions: string[];
}

const cases: Case[] = [
  {
    name: "a duplicate in the group is the first copy's answer, written once",
    reports: [
      report(A, "x1", "partial_fill", fill("10")),
      report(A, "x1", "partial_fill", fill("10")),
      report(A, "x2", "partial_fill", fill("5")),
    ],
    kinds: ["applied", "repeat", "applied"],
    events: [[11, "partial_fill"], [12, "partial_fill"]],
    executions: ["x1", "x2"],
  },
  {
    name: "an exec_id applied before the group is its first result, not applied again",
    reports: [report(A, "x-old", "partial_fill", fill("10")), report(A, "x3", "fill", fill("100"))],
    kinds: ["stored", "applied"],
    events: [[11, "fill"]],
    executions: ["x3"],
  },
  {
    name: "an order replaced inside the group: the old one takes no more, the new one is written",
    b: pendingReplace(order(B, "new")),
    reports: [
      report(B, "r1", "replaced", { qty: "150" }),
      report(B, "r2", "partial_fill", fill("1")),
      report(A, "a1", "partial_fill", fill("1")),
    ],
    kinds: ["applied", "refused", "applied"],
    events: [[11, "replaced"], [12, "new"], [13, "partial_fill"]],
    executions: ["r1", "a1"],
  },
  {
    name: "a report for an order another group just finished is refused; the rest go on",
    b: order(B, "filled"),
    reports: [report(B, "f1", "partial_fill", fill("1")), report(A, "a2", "canceled")],
    kinds: ["refused", "applied"],
    events: [[11, "canceled"]],
    executions: ["a2"],
  },
  {
    name: "an unknown order is a 404 and writes nothing",
    reports: [report(GONE, "u1", "new")],
    kinds: ["unknown"],
    events: [],
    executions: [],
  },
];

for (const c of cases) {
  Deno.test(`decideGroup: ${c.name}`, () => {
    const decided = decideGroup(
      c.reports.map((report) => ({ report, now: NOW })),
      lookup(c.b ?? order(B, "new")),
    );
    assert.deepEqual(decided.decisions.map((d) => d.kind), c.kinds);
    const events = decided.events.get("ann") ?? [];
    assert.deepEqual(events.map((e) => [e.seq, e.type]), c.events);
    for (const e of events) assert.match(e.id, new RegExp(`^${e.seq}\\.[A-Za-z0-9_-]{8}$`));
    assert.deepEqual(decided.executions.map((x) => x.exec_id), c.executions);
    assert.equal(decided.fromSeq.get("ann"), c.events.length ? 10 : undefined);
    // Each written order once, at its last state, owned by ann.
    for (const w of decided.orders.values()) assert.equal(w.user_id, "ann");
    const lastOf = new Map(events.map((e) => [e.order.id, e.order]));
    assert.deepEqual(
      [...decided.orders.values()].map((w) => w.order),
      [...decided.orders.keys()].map((id) => lastOf.get(id)),
    );
  });
}

Deno.test("decideGroup: a repeat carries the first copy's events, marked a duplicate", () => {
  const x = report(A, "x1", "partial_fill", fill("10"));
  const [first, again] = decideGroup(
    [{ report: x, now: NOW }, { report: x, now: NOW }],
    lookup(
      order(B, "new"),
    ),
  ).decisions;
  assert.ok(first.kind === "applied" && again.kind === "repeat");
  assert.equal(first.result.duplicate, false);
  assert.equal(again.result.duplicate, true);
  assert.deepEqual(again.result.events, first.result.events);
});

Deno.test("decideGroup: a replacement is new (no state before); the old order's before is kept", () => {
  const decided = decideGroup(
    [{ report: report(B, "r1", "replaced", { qty: "150" }), now: NOW }],
    lookup(pendingReplace(order(B, "new"))),
  );
  const written = [...decided.orders.values()];
  assert.equal(written.length, 2);
  assert.equal(written[0].order.status, "replaced");
  assert.equal(written[0].before?.status, "pending_replace");
  assert.equal(written[1].order.replaces, B);
  assert.equal(written[1].before, null);
  assert.equal(written[0].order.replaced_by, written[1].order.id);
});
