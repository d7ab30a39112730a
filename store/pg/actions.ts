/**
 * The user's own writes: placing an order, asking to cancel or replace it. Each is one write
 * transaction under the user's counter-row lock (transaction.ts), so its events take the user's
 * next seqs in commit order. After commit the events go to this instance's listeners at once and
 * the state cache learns the order (the fast report path starts from it).
 */
import * as lifecycle from "../../orders/lifecycle.ts";
import { uuidv7 } from "../../orders/ids.ts";
import type { Order, OrderEvent } from "../../orders/model.ts";
import {
  decideUserAction,
  eventsFromSteps,
  orderNotFound,
  type UserActionRunner,
  userActions,
} from "../common.ts";
import type { OrderStore, PlaceResult, WriteResult } from "../store.ts";
import { publishOwn, recordWriteSet, WriteSet } from "./write_set.ts";
import type { PgContext } from "./connect.ts";
import { lockUser, write, type Writers } from "./transaction.ts";

/** placeOrder, requestCancel and requestReplace on Postgres. */
export function pgActions(
  ctx: PgContext,
  writers: Writers,
): Pick<OrderStore, "placeOrder" | "requestCancel" | "requestReplace"> {
  /** After a commit: this instance's listeners hear it at once, and the cache learns it. */
  function committed<R extends WriteResult>(result: R): R {
    const { events } = result;
    if (events.length === 0) return result;
    ctx.cache.learn(result.user_id, events[0].seq - 1, events[events.length - 1].seq, [
      result.order,
    ]);
    publishOwn(ctx, [[result.user_id, events]]);
    return result;
  }

  /** A user's request on their own order (cancel, replace), under their counter-row lock. */
  const userAction: UserActionRunner = async (userId, orderId, decide, now) =>
    committed(
      await write(
        writers,
        (tx) => lockUser(tx, userId),
        async (tx, [{ seq }]): Promise<{ result: WriteResult; write?: Promise<unknown> }> => {
          const [row] = await tx<{ body: Order }[]>`
          select body from orders where id = ${orderId} and user_id = ${userId}`;
          if (!row) throw orderNotFound(orderId);
          const result = decideUserAction(userId, row.body, decide, Number(seq), now);
          if (result.events.length === 0) return { result };
          return {
            result,
            write: recordWriteSet(
              ctx,
              tx,
              new WriteSet().order(userId, result.order).events(userId, result.events),
            ),
          };
        },
      ),
    );

  return {
    async placeOrder(userId, request, now): Promise<PlaceResult> {
      const placed = await write(
        writers,
        (tx) => lockUser(tx, userId),
        async (tx, [{ seq }]): Promise<{ result: PlaceResult; write?: Promise<unknown> }> => {
          if (request.client_order_id !== null) {
            const [row] = await tx<{ body: Order; first: OrderEvent | null }[]>`
              select o.body, (select body from order_events e where e.order_id = o.id
                              order by seq limit 1) as first
              from orders o where o.user_id = ${userId}
                and o.client_order_id = ${request.client_order_id}`;
            if (row) {
              const events = row.first ? [row.first] : [];
              return { result: { user_id: userId, order: row.body, events, created: false } };
            }
          }
          const step = lifecycle.newOrder(request, uuidv7(now.getTime()), now);
          const events = eventsFromSteps([step], Number(seq) + 1, now);
          return {
            result: { user_id: userId, order: step.order, events, created: true },
            write: recordWriteSet(
              ctx,
              tx,
              new WriteSet().order(userId, step.order).events(userId, events),
            ),
          };
        },
      );
      return placed.created ? committed(placed) : placed;
    },

    ...userActions(userAction),
  };
}
