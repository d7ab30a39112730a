/**
 * What one write transaction writes, and how: the `Changes` builder a transaction fills as it
 * decides, `writeChanges` that turns it into one statement (snapshots, events, seqs, exec_ids and
 * one NOTIFY per user, delivered at commit to every instance), and the NOTIFY payload format.
 */
import postgres from "postgres";
import { isFinal, type Order, type OrderEvent } from "../../orders/model.ts";
import type { PgContext, Tx } from "./connect.ts";

const encoder = new TextEncoder();

/** What travels on the NOTIFY channel. */
export type Notice =
  | { k: "ev"; u: string; e: OrderEvent[] }
  | { k: "ids"; u: string; s: number[] }
  | { k: "revoke"; u: string; s: string }
  | { k: "subs"; u: string };

/** What one transaction writes, collected as it decides. */
export class Changes {
  /** The latest snapshot of every order touched, by id. */
  readonly orders = new Map<string, { user_id: string; order: Order }>();
  /** New events per user, in seq order. */
  readonly byUser = new Map<string, OrderEvent[]>();
  /** Each applied exec_id with the seqs it produced (its first answer, for duplicates). */
  readonly executions: Array<
    { exec_id: string; user_id: string; order_id: string; seqs: number[] }
  > = [];

  /** Whether there is nothing to write. */
  get empty(): boolean {
    return this.orders.size === 0 && this.byUser.size === 0 && this.executions.length === 0;
  }

  /** Records an order's latest snapshot. */
  order(userId: string, order: Order): this {
    this.orders.set(order.id, { user_id: userId, order });
    return this;
  }

  /** Appends a user's new events (in seq order). */
  events(userId: string, events: OrderEvent[]): this {
    if (events.length === 0) return this;
    const list = this.byUser.get(userId);
    if (list) list.push(...events);
    else this.byUser.set(userId, [...events]);
    return this;
  }

  /** Records that an exec_id was applied, producing `events`. */
  execution(execId: string, userId: string, orderId: string, events: OrderEvent[]): this {
    this.executions.push({
      exec_id: execId,
      user_id: userId,
      order_id: orderId,
      seqs: events.map((e) => e.seq),
    });
    return this;
  }
}

/**
 * Every write of a transaction as one statement: the orders' snapshots, the events, each user's
 * seq, each exec_id's first answer and one NOTIFY per user (delivered at commit, to every
 * instance).
 */
export function writeChanges(ctx: PgContext, tx: Tx, c: Changes): Promise<unknown> {
  const json = (v: unknown) => tx.json(v as postgres.JSONValue);
  const orders = [...c.orders.values()].map(({ user_id, order }) => ({
    u: user_id,
    final: isFinal(order.status),
    body: order,
  }));
  const events = [...c.byUser].flatMap(([u, es]) => es.map((e) => ({ u, e })));
  const users = [...c.byUser.keys()];
  return tx`
    with o as (
      insert into orders (id, user_id, client_order_id, final, body)
      select (x->'body'->>'id')::uuid, x->>'u', x->'body'->>'client_order_id',
             (x->>'final')::boolean, x->'body'
      from json_array_elements(${json(orders)}::json) x
      on conflict (id) do update set final = excluded.final, body = excluded.body
    ), e as (
      insert into order_events (user_id, seq, order_id, at, body)
      select x->>'u', (x->'e'->>'seq')::bigint, (x->'e'->'order'->>'id')::uuid,
             (x->'e'->>'at')::timestamptz, x->'e'
      from json_array_elements(${json(events)}::json) x
    ), s as (
      update user_seqs u set seq = v.seq
      from unnest(${users}::text[], ${
    users.map((u) => c.byUser.get(u)!.at(-1)!.seq)
  }::bigint[]) as v(user_id, seq)
      where u.user_id = v.user_id
    ), x as (
      insert into executions (exec_id, user_id, order_id, seqs)
      select x->>'exec_id', x->>'user_id', (x->>'order_id')::uuid,
             array(select json_array_elements_text(x->'seqs'))::bigint[]
      from json_array_elements(${json(c.executions)}::json) x
    )
    select pg_notify(${ctx.channel}, p)
    from unnest(${users.map((u) => notice(ctx.maxNotifyBytes, u, c.byUser.get(u)!))}::text[]) as p`;
}

/** The NOTIFY payload for `events`: the events, or their seqs when too big for NOTIFY. */
function notice(maxBytes: number, userId: string, events: OrderEvent[]): string {
  const payload = JSON.stringify({ k: "ev", u: userId, e: events } satisfies Notice);
  if (encoder.encode(payload).length <= maxBytes) return payload;
  return JSON.stringify({ k: "ids", u: userId, s: events.map((e) => e.seq) } satisfies Notice);
}
