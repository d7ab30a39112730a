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
import type { ExecutionReport, OrderEvent } from "../../orders/model.ts";
import type { Fallbacks } from "../common.ts";
import { isDiskFull } from "../write_gate.ts";
import type { GroupedReport } from "../report_group.ts";
import type { ApplyResult } from "../store.ts";
import { publishOwn } from "./write_set.ts";
import { isConnectionError, type PgContext, unavailableIfConnection } from "./connect.ts";
import { type FastPlan, fastWrite, loadMissing, planFast, STALE_STATE } from "./fast_write.ts";
import { decideLocked, lockOwners } from "./locked_path.ts";
import { write, type Writers } from "./transaction.ts";

/** A report waiting to be group-committed, with its caller's answer. */
interface PendingReport extends GroupedReport {
  resolve(result: ApplyResult): void;
  reject(err: unknown): void;
}

/**
 * At most this many report groups are committing at once. One: reports that arrive while a group
 * commits wait and go together in the next, so groups grow with load and Postgres and the server
 * spend less per report. Measured on one pinned core with 5,000 streams (bench/README.md, 2026-12-02):
 * with 4 in flight the small groups saturated the core at 1,500-1,890 reports/s; with 1 it held
 * 2,000/s (p50 12-54 ms) and saturated at ~2,200/s.
 */
const GROUPS = 1;
/** At most this many reports go in one group. */
const GROUP_MAX = 250;

/** Applies reports in groups; `idle` resolves once nothing is waiting or committing. */
export class ReportGroups {
  /** Reports waiting for a group, and how many groups are committing. */
  #waiting: PendingReport[] = [];
  #running = 0;
  /** Users held by a group in flight (a report of theirs waits for the next group). */
  readonly #busy = new Set<string>();
  #idleWaiters: Array<() => void> = [];

  constructor(
    private readonly ctx: PgContext,
    private readonly writers: Writers,
    /** Where a group that could not go its first way says why (the locked path, one by one). */
    private readonly fallbacks: Fallbacks,
  ) {}

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
    let group: PendingReport[] = [];
    try {
      group = await this.#ownersKnown(picked, held);
      if (group.length === 0) return;
      // What the cache can decide goes in one statement; the rest (or all, if that statement
      // found the cache stale) under locks.
      const plan = planFast(this.ctx, group);
      let slow = plan.slow;
      if (plan.fast.length > 0 && !(await this.#writeFast(plan))) slow = group;
      if (slow.length > 0) await this.#apply(slow);
    } catch (err) {
      // Refused for now (the writers' queue full) is an answer, not a failure.
      if (!(err instanceof AppError && err.code === "unavailable")) {
        this.ctx.log.error("a report group failed unexpectedly; its reports are refused", {
          err: String(err),
          reports: group.length,
        });
      }
      for (const p of group) {
        const owner = this.ctx.cache.owner(p.report.order_id);
        if (owner !== undefined) this.ctx.cache.forget(owner);
        p.reject(err);
      }
    }
  }

  /**
   * The group to run: `picked` once the cache knows the owner of each of its orders (loaded if
   * not), less the reports whose owner turned out to be held by another group in flight (they
   * wait for the next group). On a failed load every picked report is answered and none is run.
   */
  async #ownersKnown(picked: PendingReport[], held: Set<string>): Promise<PendingReport[]> {
    const missing = picked.filter((p) => !this.ctx.cache.lookup(p.report.order_id));
    if (missing.length === 0) return picked;
    try {
      const w = await this.writers.acquire();
      try {
        const ids = [...new Set(missing.map((p) => p.report.order_id))];
        await this.writers.within(w, loadMissing(this.ctx, w.sql, ids));
      } finally {
        this.writers.release(w);
      }
    } catch (err) {
      for (const p of picked) p.reject(unavailableIfConnection(err));
      return [];
    }
    const group: PendingReport[] = [];
    for (const p of picked) {
      const owner = this.ctx.cache.owner(p.report.order_id);
      if (owner === undefined || this.#hold(owner, held)) group.push(p);
      else this.#waiting.push(p);
    }
    return group;
  }

  /** Writes a plan's fast part; false when it wrote nothing and must go the locked way. */
  async #writeFast(plan: FastPlan<PendingReport>): Promise<boolean> {
    const w = await this.writers.acquire();
    try {
      await this.writers.within(w, fastWrite(this.ctx, w.sql, plan));
    } catch (err) {
      for (const u of plan.fromSeq.keys()) this.ctx.cache.forget(u);
      if (!isConnectionError(err)) {
        // Nothing was written. A stale cache (another instance wrote for these users) or a
        // duplicate exec_id this instance did not know is the design; anything else would be a
        // broken fast path, which the locked path hides from callers: say so.
        const code = (err as { code?: string }).code;
        const reason = code === STALE_STATE
          ? "stale_cache"
          : code === "23505"
          ? "duplicate_exec_id"
          : isDiskFull(err)
          ? "disk_full" // the write gate tells that episode, once
          : "fast_write_failed";
        this.fallbacks.add(reason);
        if (reason === "fast_write_failed") {
          this.ctx.log.warn("fast write failed; the group goes under locks", { err: String(err) });
        }
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
      const { answers, learned, byUser, resent } = await write(
        this.writers,
        (tx) => lockOwners(tx, group),
        (tx, locked) => decideLocked(this.ctx, tx, group, locked),
      );
      for (const l of learned) this.ctx.cache.learn(l.user, l.from, l.to, l.orders);
      // A resend usually follows a lost answer, and on the bus the instance that committed the
      // first copy may have died before publishing it (and alerting): told again (before the
      // newer events), it reaches the streams that missed it at once, and the alert claim if it
      // is recent (a session's resend hours later alerts nobody); each is taken once.
      if (this.ctx.bus && resent.size > 0) publishOwn(this.ctx, sortedBySeq(resent), true);
      publishOwn(this.ctx, byUser);
      answers.forEach((answer, i) => {
        if (answer instanceof Error) group[i].reject(answer);
        else group[i].resolve(answer);
      });
    } catch (err) {
      // The database away or out of disk fails every report alike: each is answered 503 as it is.
      const forAll = (err instanceof AppError && err.code === "unavailable") || isDiskFull(err);
      if (group.length > 1 && !forAll) {
        // One report's write failed the whole group: give every report its own transaction.
        this.fallbacks.add("group_failed");
        this.ctx.log.warn("a report group failed; its reports go one by one", {
          err: String(err),
          reports: group.length,
        });
        for (const p of group) await this.#apply([p]);
      } else for (const p of group) p.reject(err);
    }
  }
}

/** Each user's events in seq order, without repeats (resends of one report in one group). */
function sortedBySeq(byUser: Map<string, OrderEvent[]>): Map<string, OrderEvent[]> {
  return new Map(
    [...byUser].map(([user, events]) => [
      user,
      [...new Map(events.map((e) => [e.seq, e])).values()].sort((a, b) => a.seq - b.seq),
    ]),
  );
}
