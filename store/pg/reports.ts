/**
 * The venue's reports, group-committed: a report starts its own group at once while fewer than
 * GROUPS are in flight; otherwise it waits and goes with everything else waiting. At low load that
 * adds nothing; under load it turns N commits (N WAL flushes) into one. Each report still gets its
 * own answer.
 *
 * A group is first decided on this instance's cache and written by one statement (fast_write.ts);
 * what that cannot decide, or a fast write that found the cache stale, goes through the locked
 * path here: BEGIN + the owners' row locks + fresh reads + one write + COMMIT. Two groups in
 * flight never hold the same user, so this instance never races itself.
 */
import { AppError } from "../../orders/errors.ts";
import { uuidv7 } from "../../orders/ids.ts";
import * as lifecycle from "../../orders/lifecycle.ts";
import type { ExecutionReport, Order, OrderEvent } from "../../orders/model.ts";
import { eventsFromSteps, orderNotFound } from "../common.ts";
import type { ApplyResult } from "../store.ts";
import { Changes, publishOwn, writeChanges } from "./changes.ts";
import { isConnectionError, type PgContext, type Tx, unavailableIfConnection } from "./connect.ts";
import { fastWrite, loadMissing, type PendingReport, planFast } from "./fast_write.ts";
import { write, type Writers } from "./transaction.ts";

/** At most this many report groups are committing at once (the pool has room for more). */
const GROUPS = 4;
/** At most this many reports go in one group. */
const GROUP_MAX = 250;

/** The owners' counter rows a group locked, with each order's owner. */
type Locked = { user_id: string; seq: string; order_id: string };

/** A locked group's answers, what the cache learns from it, and its events per user. */
interface LockedResult {
  answers: Array<ApplyResult | Error>;
  learned: Array<{ user: string; from: number; to: number; orders: Order[] }>;
  byUser: Map<string, OrderEvent[]>;
}

/** Applies reports in groups; `idle` resolves once nothing is waiting or committing. */
export class ReportGroups {
  /** Reports waiting for a group, and how many groups are committing. */
  #waiting: PendingReport[] = [];
  #running = 0;
  /** Users held by a group in flight (a report of theirs waits for the next group). */
  readonly #busy = new Set<string>();
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
      const { group, held } = this.#pick();
      if (group.length === 0) return; // every waiting report's user is in a group in flight
      this.#running++;
      this.#run(group, held).finally(() => {
        for (const u of held) this.#busy.delete(u);
        this.#running--;
        this.#start();
        if (this.#running === 0 && this.#waiting.length === 0) {
          for (const resolve of this.#idleWaiters.splice(0)) resolve();
        }
      }).catch((err) => {
        // #run answers its own failures; this is the bookkeeping above failing. Left unhandled
        // it would end the process (Deno exits on an unhandled rejection).
        this.ctx.log.error("report group bookkeeping failed", { err: String(err) });
      });
    }
  }

  /** The next group: waiting reports whose (known) user no group in flight holds. */
  #pick(): { group: PendingReport[]; held: Set<string> } {
    const group: PendingReport[] = [];
    const rest: PendingReport[] = [];
    const held = new Set<string>();
    for (const p of this.#waiting) {
      const owner = this.ctx.cache.owner(p.report.order_id);
      if (group.length >= GROUP_MAX || (owner !== undefined && !this.#hold(owner, held))) {
        rest.push(p);
      } else group.push(p);
    }
    this.#waiting = rest;
    return { group, held };
  }

  /** Takes a user for the group holding `held`; false if another group in flight has them. */
  #hold(user: string, held: Set<string>): boolean {
    if (held.has(user)) return true;
    if (this.#busy.has(user)) return false;
    this.#busy.add(user);
    held.add(user);
    return true;
  }

  /**
   * Runs a group and never rejects: an unexpected error anywhere in its planning or writing (a
   * bug, a corrupt snapshot) rejects every report of the group still unanswered — answering one
   * twice is a no-op, so those already answered keep their answer — and is logged. Without this
   * the callers would wait for ever (and hold their places in the write gate). The group's users
   * are forgotten by the cache, so their next reports start from Postgres' truth.
   */
  async #run(picked: PendingReport[], held: Set<string>): Promise<void> {
    const current = { group: picked };
    try {
      await this.#runGroup(current, held);
    } catch (err) {
      this.ctx.log.error("a report group failed unexpectedly; its reports are refused", {
        err: String(err),
        reports: current.group.length,
      });
      for (const p of current.group) {
        const owner = this.ctx.cache.owner(p.report.order_id);
        if (owner !== undefined) this.ctx.cache.forget(owner);
        p.reject(err);
      }
    }
  }

  /** Applies a group: what the cache can decide in one statement, the rest under locks. */
  async #runGroup(current: { group: PendingReport[] }, held: Set<string>): Promise<void> {
    const picked = current.group;
    let group = picked;
    try {
      const missing = group.filter((p) => !this.ctx.cache.lookup(p.report.order_id));
      if (missing.length > 0) {
        const w = await this.writers.acquire();
        try {
          await loadMissing(this.ctx, w.sql, [...new Set(missing.map((p) => p.report.order_id))]);
        } finally {
          this.writers.release(w);
        }
        // A user found only now may be in another group in flight: wait for the next group.
        group = [];
        for (const p of picked) {
          const owner = this.ctx.cache.owner(p.report.order_id);
          if (owner === undefined || this.#hold(owner, held)) group.push(p);
          else this.#waiting.push(p);
        }
        current.group = group;
      }
    } catch (err) {
      for (const p of group) p.reject(unavailableIfConnection(err));
      return;
    }
    const plan = planFast(this.ctx, group);
    let slow = plan.slow;
    if (plan.fast.length > 0 && !(await this.#writeFast(plan))) slow = group;
    if (slow.length > 0) await this.#apply(slow);
  }

  /** Writes a plan's fast part; false when it wrote nothing and must go the locked way. */
  async #writeFast(plan: ReturnType<typeof planFast>): Promise<boolean> {
    const w = await this.writers.acquire();
    try {
      await fastWrite(this.ctx, w.sql, plan);
    } catch (err) {
      for (const u of plan.fromSeq.keys()) this.ctx.cache.forget(u);
      if (!isConnectionError(err)) {
        // A stale cache, another instance's write or a duplicate exec_id: nothing was written.
        this.ctx.log.debug("fast write refused; retrying under locks", { err: String(err) });
        return false;
      }
      // Committed or not, nobody can tell: the caller retries (idempotent on exec_id).
      this.writers.lost();
      for (const p of plan.fast) p.reject(unavailableIfConnection(err));
      return true;
    } finally {
      this.writers.release(w);
    }
    for (const [user, orders] of plan.touched) {
      const events = plan.changes.byUser.get(user)!;
      this.ctx.cache.learn(user, plan.fromSeq.get(user)!, events[events.length - 1].seq, orders);
    }
    publishOwn(this.ctx, plan.changes.byUser);
    plan.fast.forEach((p, i) => p.resolve(plan.answers[i]));
    return true;
  }

  /** Applies a group in one locked transaction; if it fails as a whole, each report alone. */
  async #apply(group: PendingReport[]): Promise<void> {
    try {
      const { answers, learned, byUser } = await write(
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
      for (const l of learned) this.ctx.cache.learn(l.user, l.from, l.to, l.orders);
      publishOwn(this.ctx, byUser);
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
  ): Promise<{ result: LockedResult; write?: Promise<unknown> }> {
    const owners = new Map<string, string>();
    const seqs = new Map<string, number>();
    for (const l of locked) {
      owners.set(l.order_id, l.user_id);
      seqs.set(l.user_id, Number(l.seq));
    }
    const fromSeq = new Map(seqs);
    // A fresh snapshot, taken under the locks: a concurrent copy of any of these reports has
    // committed or never will, and each order is as its last writer left it.
    const [orderRows, execRows] = await Promise.all([
      tx<{ body: Order }[]>`select body from orders where id = any(${[...owners.keys()]}::uuid[])`,
      // Planned afresh each time (writers force custom plans, transaction.ts): a generic plan
      // made while `executions` was small was a sequential scan which grew with the table (3 ms a
      // group after 20 s at 1,000 reports/s, for good with autovacuum off).
      tx<{ exec_id: string; user_id: string; seqs: string[] }[]>`
        select exec_id, user_id, seqs from executions
        where exec_id = any(${group.map((p) => p.report.exec_id)}::text[])`,
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
    // What the cache learns: every order read or written here is as of the user's last seq.
    const learned = [...fromSeq].map(([user, from]) => ({
      user,
      from,
      to: seqs.get(user)!,
      orders: [...orders.values()].filter((o) => owners.get(o.id) === user),
    }));
    return {
      result: { answers: result, learned, byUser: changes.byUser },
      write: changes.empty ? undefined : writeChanges(this.ctx, tx, changes),
    };
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
