/**
 * The venue's reports, group-committed: a report starts its own transaction at once while fewer
 * than GROUPS are in flight; otherwise it waits and goes with everything else waiting, in one
 * transaction. At low load that adds nothing; under load it turns N commits (N WAL flushes,
 * 3N round trips) into one. Each report still gets its own answer.
 */
import { AppError } from "../../orders/errors.ts";
import { uuidv7 } from "../../orders/ids.ts";
import * as lifecycle from "../../orders/lifecycle.ts";
import type { ExecutionReport, Order, OrderEvent } from "../../orders/model.ts";
import { eventsFromSteps, orderNotFound } from "../common.ts";
import type { ApplyResult } from "../store.ts";
import { Changes, writeChanges } from "./changes.ts";
import type { PgContext, Tx } from "./connect.ts";
import { write, type Writers } from "./transaction.ts";

/** At most this many report groups are committing at once (the pool has room for more). */
const GROUPS = 4;
/** At most this many reports go in one group. */
const GROUP_MAX = 250;

/** A report waiting to be group-committed, with its caller's answer. */
interface PendingReport {
  report: ExecutionReport;
  now: Date;
  resolve(result: ApplyResult): void;
  reject(err: unknown): void;
}

/** The owners' counter rows a group locked, with each order's owner. */
type Locked = { user_id: string; seq: string; order_id: string };

/** Applies reports in groups; `idle` resolves once nothing is waiting or committing. */
export class ReportGroups {
  /** Reports waiting for a group, and how many groups are committing. */
  #waiting: PendingReport[] = [];
  #running = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(private readonly ctx: PgContext, private readonly writers: Writers) {}

  /** Applies one report (see the module's comment); answers it alone. */
  applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ report, now, resolve, reject });
      this.#start();
    });
  }

  /** Resolves when every report handed in so far has been answered. */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #start(): void {
    while (this.#running < GROUPS && this.#waiting.length > 0) {
      const group = this.#waiting.splice(0, GROUP_MAX);
      this.#running++;
      this.#apply(group).finally(() => {
        this.#running--;
        this.#start();
        if (this.#running === 0 && this.#waiting.length === 0) {
          for (const resolve of this.#idleWaiters.splice(0)) resolve();
        }
      });
    }
  }

  /** Applies a group in one transaction; if it fails as a whole, each report alone. */
  async #apply(group: PendingReport[]): Promise<void> {
    try {
      const answers = await write(
        this.writers,
        (tx) =>
          // Every owner's counter row, locked in user_id order so concurrent groups never
          // deadlock; the join also answers each order's owner.
          tx<Locked[]>`
            select s.user_id, s.seq, o.id as order_id
            from orders o join user_seqs s on s.user_id = o.user_id
            where o.id = any(${[...new Set(group.map((p) => p.report.order_id))]}::uuid[])
            order by s.user_id
            for update of s`,
        (tx, locked) => this.#decide(tx, group, locked),
      );
      answers.forEach((answer, i) => {
        if (answer instanceof Error) group[i].reject(answer);
        else group[i].resolve(answer);
      });
    } catch (err) {
      if (group.length > 1 && !(err instanceof AppError && err.code === "unavailable")) {
        // One report's write failed the whole group: give every report its own transaction.
        for (const p of group) await this.#apply([p]);
      } else for (const p of group) p.reject(err);
    }
  }

  /** Under the owners' locks: reads the orders, applies each report in turn, returns the write. */
  async #decide(
    tx: Tx,
    group: PendingReport[],
    locked: Locked[],
  ): Promise<{ result: Array<ApplyResult | Error>; write?: Promise<unknown> }> {
    const owners = new Map<string, string>();
    const seqs = new Map<string, number>();
    for (const l of locked) {
      owners.set(l.order_id, l.user_id);
      seqs.set(l.user_id, Number(l.seq));
    }
    // A fresh snapshot, taken under the locks: a concurrent copy of any of these reports has
    // committed or never will, and each order is as its last writer left it.
    const [orderRows, execRows] = await Promise.all([
      tx<{ body: Order }[]>`select body from orders where id = any(${[...owners.keys()]}::uuid[])`,
      // Planned afresh each time (an unnamed statement): as a prepared statement Postgres may
      // switch it to a generic plan and keep it; planned while `executions` was small, that was a
      // sequential scan which grew with the table (3 ms a group after 20 s at 1,000 reports/s,
      // for good with autovacuum off).
      tx.unsafe<{ exec_id: string; user_id: string; seqs: string[] }[]>(
        "select exec_id, user_id, seqs from executions where exec_id = any($1::text[])",
        [group.map((p) => p.report.exec_id)],
        { prepare: false },
      ),
    ]);
    const orders = new Map(orderRows.map((r) => [r.body.id, r.body]));
    const firstTime = new Map(execRows.map((r) => [r.exec_id, r]));
    const changes = new Changes();
    const inGroup = new Map<string, ApplyResult>();
    const result: Array<ApplyResult | Error> = [];
    for (const { report, now } of group) {
      const earlier = inGroup.get(report.exec_id);
      if (earlier) {
        result.push({ ...earlier, duplicate: true });
        continue;
      }
      const owner = owners.get(report.order_id);
      const order = orders.get(report.order_id);
      if (!owner || !order) {
        result.push(orderNotFound(report.order_id));
        continue;
      }
      const first = firstTime.get(report.exec_id);
      if (first) {
        result.push(await firstResult(tx, first.user_id, first.seqs.map(Number), order));
        continue;
      }
      const outcome = lifecycle.applyReport(order, report, {
        now,
        newId: () => uuidv7(now.getTime()),
      });
      if ("refused" in outcome) {
        result.push(new AppError(outcome.code, outcome.refused));
        continue;
      }
      const events = eventsFromSteps(outcome.steps, seqs.get(owner)! + 1, now);
      if (events.length > 0) seqs.set(owner, events[events.length - 1].seq);
      for (const step of outcome.steps) {
        // A replacement is known from here on, for later reports in this group.
        orders.set(step.order.id, step.order);
        owners.set(step.order.id, owner);
        changes.order(owner, step.order);
      }
      changes.events(owner, events);
      changes.execution(report.exec_id, owner, order.id, events);
      const applied = { user_id: owner, order: outcome.order, events, duplicate: false };
      inGroup.set(report.exec_id, applied);
      result.push(applied);
    }
    return { result, write: changes.empty ? undefined : writeChanges(this.ctx, tx, changes) };
  }
}

/** The answer an exec_id got the first time, for a duplicate. */
async function firstResult(
  tx: Tx,
  userId: string,
  seqs: number[],
  order: Order,
): Promise<ApplyResult> {
  const rows = seqs.length === 0 ? [] : await tx<{ body: OrderEvent }[]>`
    select body from order_events where user_id = ${userId} and seq = any(${seqs})
    order by seq`;
  const events = rows.map((r) => r.body);
  return { user_id: userId, order: events[0]?.order ?? order, events, duplicate: true };
}
