/**
 * The hot path of the venue's reports: a group decided on what this instance has cached
 * (state_cache.ts) and written by ONE autocommit statement — no BEGIN, no row locks, no reads —
 * that advances each user's seq only where it is still the one the decision started from,
 * inserts the events, upserts the snapshots, inserts the executions (exec_id primary key) and
 * notifies. If any user's seq had moved (a stale cache, another instance's write) or an exec_id
 * is already stored (a duplicate this instance did not know), the statement raises and writes
 * nothing; the caller then forgets those users and sends the group through the locked path,
 * which reads afresh and handles duplicates and races.
 *
 * Only reports the lifecycle accepts with at least one step are written this way: a refusal or
 * an unknown order may really be a duplicate exec_id (whose answer is its first result, not a
 * 409), which only the locked path can tell.
 */
import type { Order } from "../../orders/model.ts";
import { decideGroup, type GroupedReport } from "../report_group.ts";
import type { ApplyResult } from "../store.ts";
import { eventNotices, type WriteSet, writeSetOf, writeSetRows } from "./write_set.ts";
import type { PgContext, Sql } from "./connect.ts";
import { bareArray, records } from "./wire.ts";

/** SQLSTATE the fast statement raises when a user's seq is not the one expected (schema.sql). */
export const STALE_STATE = "BL001";

/** A group split into what the fast statement writes and what goes through the locked path. */
export interface FastPlan<R extends GroupedReport> {
  /** The reports written by the fast statement, with their answers (same index). */
  fast: R[];
  answers: ApplyResult[];
  /** The reports the locked path must decide (refused, unknown, nothing cached, no events). */
  slow: R[];
  changes: WriteSet;
  /** Each written user's seq before the write (the statement's condition). */
  fromSeq: Map<string, number>;
  /** Each written user's orders as they are after the write (what the cache learns). */
  touched: Map<string, Order[]>;
}

/**
 * Loads what the cache lacks for these orders — each order with its owner and the owner's seq,
 * in one query, so snapshot and seq are from the same moment — into the cache. `sql` is a writer.
 */
export async function loadMissing(ctx: PgContext, sql: Sql, orderIds: string[]): Promise<void> {
  if (orderIds.length === 0) return;
  // On a writer: prepared, one round trip, planned once per connection (transaction.ts).
  const rows = await sql<{ user_id: string; seq: string; body: Order }[]>`
    select o.user_id, s.seq, o.body from orders o join user_seqs s on s.user_id = o.user_id
    where o.id = any(${orderIds}::uuid[])`;
  const byUser = new Map<string, { seq: number; orders: Order[] }>();
  for (const r of rows) {
    const entry = byUser.get(r.user_id) ?? { seq: Number(r.seq), orders: [] };
    entry.orders.push(r.body);
    byUser.set(r.user_id, entry);
  }
  for (const [user, { seq, orders }] of byUser) ctx.cache.learn(user, seq, seq, orders);
}

/**
 * Decides a group on the cached state (store/report_group.ts). What the cache cannot decide goes
 * to the locked path: an order it does not hold, a refusal (either may be a duplicate exec_id
 * this instance did not know, whose answer is its first result), a report with no events.
 * Those change nothing the reports after them are decided on.
 */
export function planFast<R extends GroupedReport>(ctx: PgContext, group: R[]): FastPlan<R> {
  const seqs = new Map<string, number>();
  const decided = decideGroup(group, {
    order(orderId) {
      const cached = ctx.cache.lookup(orderId);
      if (cached) seqs.set(cached.user_id, cached.seq);
      return cached;
    },
    seq: (userId) => seqs.get(userId)!,
    // A duplicate exec_id is caught by the statement itself (its primary key).
    firstTime: () => undefined,
  });
  const plan: FastPlan<R> = {
    fast: [],
    answers: [],
    slow: [],
    changes: writeSetOf(decided, (x) => x.events.length > 0),
    fromSeq: decided.fromSeq,
    touched: new Map(),
  };
  const slowIds = new Set<string>();
  decided.decisions.forEach((d, i) => {
    const p = group[i];
    const fast = (d.kind === "applied" && d.result.events.length > 0) ||
      (d.kind === "repeat" && !slowIds.has(p.report.exec_id));
    if (fast) {
      plan.fast.push(p);
      plan.answers.push(d.result);
    } else {
      slowIds.add(p.report.exec_id);
      plan.slow.push(p);
    }
  });
  for (const { user_id, order } of decided.orders.values()) {
    plan.touched.set(user_id, [...(plan.touched.get(user_id) ?? []), order]);
  }
  return plan;
}

/**
 * The one statement that writes a plan's fast part (see the module comment); throws STALE_STATE
 * (or a unique violation) when it wrote nothing because the cache was not the truth.
 */
export function fastWrite(
  ctx: PgContext,
  sql: Sql,
  plan: FastPlan<GroupedReport>,
): Promise<unknown> {
  const { userList, orders: o, events: e, users, lastSeqs, executions: x } = writeSetRows(
    plan.changes,
  );
  return sql.unsafe(
    `with l as (
      -- The owners' rows locked in user_id order, as the locked path locks them (reports.ts):
      -- in arrival order, a fast write and a locked group on another instance could deadlock.
      select user_id from user_seqs where user_id = any($1::text[]) order by user_id for update
    ), s as (
      update user_seqs u set seq = v.to_seq
      from unnest($1::text[], $2::bigint[], $3::bigint[]) as v(user_id, from_seq, to_seq)
      where u.user_id = v.user_id and u.seq = v.from_seq and (select count(*) from l) >= 0
      returning 1
    ), o as (
      insert into orders (id, user_id, client_order_id, final, body)
      select id, u, c, f, b::json
      from unnest($4::uuid[], $5::text[], $6::text[], $7::boolean[], string_to_array($8, chr(30)))
        as v(id, u, c, f, b)
      on conflict (id) do update set final = excluded.final, body = excluded.body
    ), e as (
      insert into order_events (user_id, seq, order_id, at, body)
      select u, seq, oid, at, b::json
      from unnest($9::text[], $10::bigint[], $11::uuid[], $12::timestamptz[],
                  string_to_array($13, chr(30))) as v(u, seq, oid, at, b)
    ), x as (
      insert into executions (exec_id, user_id, order_id, seqs)
      select id, u, oid, s::bigint[]
      from unnest($14::text[], $15::text[], $16::uuid[], $17::text[]) as v(id, u, oid, s)
    )
    -- The check runs once whether or not there is a NOTIFY to send (with the bus there is none).
    select blotter_expect_advanced((select count(*) from s)::integer, $20::integer),
           (select count(pg_notify($18, p)) from unnest(string_to_array($19, chr(30))) as p)`,
    [
      users,
      bareArray(userList.map((u) => plan.fromSeq.get(u)!)),
      lastSeqs,
      o.ids,
      o.users,
      o.clientIds,
      o.finals,
      o.bodies,
      e.users,
      e.seqs,
      e.orderIds,
      e.ats,
      e.bodies,
      x.ids,
      x.users,
      x.orderIds,
      x.seqs,
      ctx.channel,
      records(eventNotices(ctx, plan.changes.byUser)),
      userList.length,
    ],
    // Prepared (postgres.js sends an unprepared statement with parameters in two round trips:
    // describe, then execute); the writers plan it once per connection (transaction.ts).
    { prepare: true },
  );
}
