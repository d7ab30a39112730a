/**
 * The execution platform's reports, as `POST /api/v1/executions` takes them: one report or a
 * batch, each validated and applied alone and answered alone, the same way whichever it came in.
 * The route maps the results to HTTP; this module knows nothing of it.
 */
import { AppError, errorBody, parseWith } from "../orders/errors.ts";
import { ExecutionReport } from "../orders/model.ts";
import type { ApplyResult, OrderStore } from "../store/store.ts";

/** One report's outcome: its HTTP status and the JSON body that answers it. */
export interface IngestResult {
  /** 201 applied, 200 a duplicate exec_id, 400/404/409 refused, 503 refused for now. */
  status: number;
  body: IngestBody;
  /** For a 503: how long the venue should wait before sending it again, in seconds. */
  retryAfterS?: number;
}

/** The answer to one report: what it did (an applied one) or why not (the API's error body). */
export type IngestBody =
  | Pick<ApplyResult, "duplicate" | "order" | "events">
  | ReturnType<typeof errorBody>;

/** What ingest needs: the store's report write and the clock. */
export interface IngestDeps {
  store: Pick<OrderStore, "applyReport">;
  now: () => Date;
  /** Told each report's status as it is answered (the route counts them). */
  answered?: (status: number) => void;
}

/**
 * Applies reports as a venue sent them. Reports for one order apply in the order given;
 * different orders apply concurrently (the store serializes per user), so a batch uses the whole
 * connection pool. A report refused for now (the write queue full, the store busy or away) is a
 * 503 result with `retryAfterS`; the others of its batch may already be written and are answered
 * as they went. Anything but an AppError (a bug) is thrown.
 */
export async function ingest(deps: IngestDeps, items: readonly unknown[]): Promise<IngestResult[]> {
  const results: IngestResult[] = new Array(items.length);
  const byOrder = new Map<unknown, number[]>();
  items.forEach((item, i) => {
    const key = (item as { order_id?: unknown } | null)?.order_id ?? `#${i}`;
    const list = byOrder.get(key);
    if (list) list.push(i);
    else byOrder.set(key, [i]);
  });
  await Promise.all([...byOrder.values()].map(async (indexes) => {
    for (const i of indexes) {
      results[i] = await ingestOne(deps, items[i]);
      deps.answered?.(results[i].status);
    }
  }));
  return results;
}

async function ingestOne(deps: IngestDeps, item: unknown): Promise<IngestResult> {
  try {
    const report = parseWith(ExecutionReport, item);
    const { duplicate, order, events } = await deps.store.applyReport(report, deps.now());
    return { status: duplicate ? 200 : 201, body: { duplicate, order, events } };
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    if (err.code !== "unavailable") return { status: err.status, body: errorBody(err) };
    const retry = (err.details as { retry_after_s?: number } | undefined)?.retry_after_s;
    return { status: err.status, body: errorBody(err), retryAfterS: retry ?? 1 };
  }
}
