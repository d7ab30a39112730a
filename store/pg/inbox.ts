/**
 * The SQL inbox: `execution_inbox` (../schema.sql) is the plain-SQL way to feed reports. Rows are
 * claimed with `for update skip locked`, validated and applied through `applyReport`, and answered
 * with the status and body the HTTP API would have given. One drain at a time per process, woken
 * by NOTIFY on the inbox channel and on every (re)connect of the change feed.
 */
import { Episode } from "../../log.ts";
import postgres from "postgres";
import { AppError, errorBody } from "../../orders/errors.ts";
import { ExecutionReport } from "../../orders/model.ts";
import type { OrderStore } from "../store.ts";
import type { PgContext } from "./connect.ts";

/** The inbox drain: `wake` starts (or re-runs) it; `finished` resolves when none is running. */
export interface InboxDrain {
  wake(): void;
  finished(): Promise<void>;
}

/** The drain for this store, applying rows through `applyReport`. */
export function inboxDrain(ctx: PgContext, orders: Pick<OrderStore, "applyReport">): InboxDrain {
  let draining: Promise<void> | null = null;
  let drainAgain = false;
  // Retried every second while the database is away or its disk full: told once, not per try.
  const failing = new Episode(ctx.log, {
    began: "draining the execution inbox failed; trying again every second",
    ended: "the execution inbox drains again",
  });

  /** Applies pending inbox rows; one drain at a time per process, re-run if woken meanwhile. */
  function wake(): void {
    if (draining) {
      drainAgain = true;
      return;
    }
    draining = (async () => {
      do {
        drainAgain = false;
        while (!ctx.closed && await drainBatch() > 0) { /* next batch */ }
      } while (drainAgain && !ctx.closed);
      failing.resolved();
    })().catch((err) => {
      failing.occurred({ err: String(err) });
      // Nothing else may wake the drain (no new insert, the listener never dropped): retry.
      if (!ctx.closed) setTimeout(() => !ctx.closed && wake(), 1_000);
    }).finally(() => {
      draining = null;
    });
  }

  async function drainBatch(): Promise<number> {
    // Claimed rows that were never answered (an instance died mid-way) are taken again after
    // 30 s; applying twice is harmless because exec_id is idempotent.
    const rows = await ctx.sql<{ id: string; report: unknown }[]>`
      update execution_inbox set claimed_at = now()
      where id in (
        select id from execution_inbox
        where processed_at is null
          and (claimed_at is null or claimed_at < now() - interval '30 seconds')
        order by id limit 100
        for update skip locked)
      returning id, report`;
    rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
    let done = 0;
    try {
      for (const row of rows) {
        await answerRow(row);
        done++;
      }
    } catch (err) {
      // The database went away mid-batch: give the rest back at once rather than after the
      // 30 s claim timeout (best effort; the timeout still covers a failure here, so this
      // statement's own failure is dropped and `err` is the one reported).
      const rest = rows.slice(done).map((r) => r.id);
      await ctx.sql`update execution_inbox set claimed_at = null where id = any(${rest})`
        .catch(() => {});
      throw err;
    }
    return rows.length;
  }

  /** Validates and applies one inbox row and records the answer the API would have given. */
  async function answerRow(row: { id: string; report: unknown }): Promise<void> {
    let status: number, result: unknown;
    const parsed = ExecutionReport.safeParse(row.report);
    if (!parsed.success) {
      status = 400;
      result = errorBody(
        new AppError("invalid_request", "The report is not valid", parsed.error.issues),
      );
    } else {
      try {
        const applied = await orders.applyReport(parsed.data, new Date());
        status = applied.duplicate ? 200 : 201;
        result = { order: applied.order, seqs: applied.events.map((e) => e.seq) };
      } catch (err) {
        if (!(err instanceof AppError) || err.code === "unavailable") throw err;
        status = err.status;
        result = errorBody(err);
      }
    }
    await ctx.sql`
      update execution_inbox set processed_at = now(), result_status = ${status},
        result = ${ctx.sql.json(result as postgres.JSONValue)}
      where id = ${row.id}`;
  }

  return {
    wake,
    finished: async () => {
      await draining;
    },
  };
}
