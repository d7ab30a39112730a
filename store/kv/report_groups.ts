/**
 * The venue's reports on KV, group-committed as on Postgres: reports that arrive while a group is
 * committing wait and then go together in ONE atomic commit (one SQLite transaction, one fsync),
 * each still answered alone, exactly as `applyOne` would answer it. One group at a time per
 * process, so groups never race each other; the user's own actions (under the per-user mutex)
 * and other processes sharing the file are caught by versionstamp checks on every order read and
 * every user's seq counter, and the group is then decided again from fresh reads.
 *
 * A group is first tried on what this process last read or wrote of its orders and users
 * (entry_cache.ts) with no reads at all: each exec_id checked absent instead of read, every
 * cached entry checked at its versionstamp. If a check loses (a stale entry, a duplicate exec_id)
 * nothing is written and the group is decided again from fresh reads, as it is when the first
 * try meets a report it cannot answer without them (an unknown order, a refusal: either may be a
 * duplicate whose answer is its first result).
 *
 * KV caps one atomic operation (100 checks, 1,000 mutations, 800 KB of values, 80 KB of keys):
 * GROUP_MAX keeps a group inside all four, and a group that still fails as a whole (a check
 * that keeps losing, a limit) is applied report by report.
 */
import { type ExecutionReport, isFinal } from "../../orders/model.ts";
import { decideGroup, type GroupedReport } from "../report_group.ts";
import { isDiskFull } from "../write_gate.ts";
import type { ApplyResult } from "../store.ts";
import {
  commitOrBusy,
  type ExecRecord,
  type KvContext,
  MAX_ATTEMPTS,
  type OrderRecord,
  writeEvents,
  writeOrder,
} from "./keys.ts";
import { KvEntryCache } from "./entry_cache.ts";

/**
 * Reports per group: a check each for its order, its owner's seq and its exec_id, so ≤ 99 of KV's
 * 100 checks (no room for a fourth per report), and ~12 mutations each.
 */
const GROUP_MAX = 33;

/** A report waiting for a group, with its caller's answer. */
interface Pending extends GroupedReport {
  resolve(result: ApplyResult): void;
  reject(err: unknown): void;
}

/** How a report is applied alone (the fallback), and a duplicate's first result read. */
export interface KvReportDeps {
  applyOne(report: ExecutionReport, now: Date): Promise<ApplyResult>;
  duplicateOf(rec: ExecRecord): Promise<ApplyResult>;
}

/** Group-commits reports (see the module comment). */
export class KvReportGroups {
  #waiting: Pending[] = [];
  #running = false;
  readonly #cache = new KvEntryCache();

  constructor(private readonly ctx: KvContext, private readonly deps: KvReportDeps) {}

  /** Applies one report in the next group; answers it alone. */
  applyReport(report: ExecutionReport, now: Date): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ report, now, resolve, reject });
      this.#start();
    });
  }

  #start(): void {
    if (this.#running || this.#waiting.length === 0) return;
    this.#running = true;
    const group = this.#waiting.splice(0, GROUP_MAX);
    this.#commit(group).finally(() => {
      this.#running = false;
      this.#start();
    });
  }

  /** Commits a group atomically, retrying on lost checks; else each report alone. */
  async #commit(group: Pending[]): Promise<void> {
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const answers = await this.#tryOnce(group, attempt === 0);
        if (answers) {
          answers.forEach((a, i) => a instanceof Error ? group[i].reject(a) : group[i].resolve(a));
          return;
        }
      }
    } catch (err) {
      // The group wrote nothing (a read failed, or a KV limit): each report is tried alone below,
      // unless the disk is full, which fails every report alike (each answered 503).
      if (group.length === 1 || isDiskFull(err)) {
        for (const p of group) p.reject(err);
        return;
      }
      this.ctx.fallbacks.add("group_failed");
      this.ctx.log.warn("a report group failed; its reports go one by one", {
        err: String(err),
        reports: group.length,
      });
    }
    for (const p of group) await this.deps.applyOne(p.report, p.now).then(p.resolve, p.reject);
  }

  /**
   * One read-decide-commit of the group; null when a check lost (nothing was written). `cached`:
   * the first try, on the cache and with no exec_id read (see the module comment).
   */
  async #tryOnce(group: Pending[], cached: boolean): Promise<Array<ApplyResult | Error> | null> {
    const { kv } = this.ctx;
    const orderIds = [...new Set(group.map((p) => p.report.order_id))];
    const execIds = [...new Set(group.map((p) => p.report.exec_id))];
    const [orderEntries, execEntries] = await Promise.all([
      this.#entries<OrderRecord>(
        orderIds.map((id) => ["order", id]),
        cached,
        (rec) => !isFinal(rec.order.status), // a final order takes no more reports
      ),
      cached ? [] : getAll<ExecRecord>(kv, execIds.map((id) => ["exec", id])),
    ]);
    const owners = [...new Set(orderEntries.flatMap((e) => e.value ? [e.value.user_id] : []))];
    const seqEntries = await this.#entries<number>(owners.map((u) => ["seq", u]), cached);

    const firstTime = new Map(execEntries.flatMap((e) => e.value ? [[e.key[1], e.value]] : []));
    const orders = new Map(
      orderEntries.flatMap((e) => e.value ? [[e.value.order.id, e.value]] : []),
    );
    const seqs = new Map(owners.map((u, i) => [u, seqEntries[i].value ?? 0]));
    const decided = decideGroup(group, {
      order: (orderId) => orders.get(orderId),
      seq: (userId) => seqs.get(userId)!,
      firstTime: (execId) => firstTime.get(execId),
    });
    // An unknown order or a refusal may be a duplicate whose answer is its first result: on the
    // first try (no exec_id read) only a try with the reads can tell.
    if (cached && decided.decisions.some((d) => d.kind === "unknown" || d.kind === "refused")) {
      return null;
    }
    const answers: Array<ApplyResult | Error> = [];
    for (const d of decided.decisions) {
      if (d.kind === "stored") answers.push(await this.deps.duplicateOf(d.first));
      else answers.push(d.kind === "applied" || d.kind === "repeat" ? d.result : d.error);
    }
    if (decided.executions.length === 0) return answers;

    const op = kv.atomic().check(...orderEntries.filter((e) => e.value), ...seqEntries);
    // Not read on the first try: each exec_id must still be absent, or nothing is written.
    if (cached) {
      for (const id of execIds) op.check({ key: ["exec", id], versionstamp: null });
    }
    // Each order once, at its last state in this group, its indexes moved from its state before.
    for (const { user_id, order, before } of decided.orders.values()) {
      writeOrder(op, user_id, order, before);
    }
    for (const [user, evs] of decided.events) writeEvents(op, user, evs);
    for (const { exec_id, user_id, order_id, events } of decided.executions) {
      const seqs = events.map((e) => e.seq);
      op.set(["exec", exec_id], { user_id, order_id, seqs } satisfies ExecRecord);
    }
    const committed = await commitOrBusy(op);
    if (!committed.ok) {
      // Whichever check lost, these entries are suspect: the next try reads them.
      for (const id of orderIds) this.#cache.delete(["order", id]);
      for (const u of owners) this.#cache.delete(["seq", u]);
      this.ctx.fallbacks.add("check_lost");
      return null;
    }
    // What this commit wrote is what the next group will find, at the commit's versionstamp.
    for (const { user_id, order } of decided.orders.values()) {
      // A final order takes no more reports: nothing to keep.
      if (isFinal(order.status)) this.#cache.delete(["order", order.id]);
      else this.#cache.set(["order", order.id], { user_id, order }, committed.versionstamp);
    }
    for (const [user, evs] of decided.events) {
      this.#cache.set(["seq", user], evs[evs.length - 1].seq, committed.versionstamp);
    }
    this.ctx.changes.publish(
      [...decided.events].flatMap(([user_id, evs]) => evs.map((event) => ({ user_id, event }))),
    );
    return answers;
  }

  /**
   * The entries at these keys: from the cache where it has them and `cached`, else read (and
   * then remembered). A key absent from KV is not remembered: its read says so each time.
   */
  async #entries<T>(
    keys: Array<[string, string]>,
    cached: boolean,
    worthKeeping: (value: T) => boolean = () => true,
  ): Promise<Deno.KvEntryMaybe<T>[]> {
    const out: Deno.KvEntryMaybe<T>[] = new Array(keys.length);
    const missing: number[] = [];
    keys.forEach((key, i) => {
      const hit = cached ? this.#cache.get<T>(key) : undefined;
      if (hit) out[i] = hit;
      else missing.push(i);
    });
    if (missing.length === 0) return out;
    const read = await getAll<T>(this.ctx.kv, missing.map((i) => keys[i]));
    read.forEach((entry, j) => {
      out[missing[j]] = entry;
      if (entry.versionstamp !== null && worthKeeping(entry.value)) {
        this.#cache.set(keys[missing[j]], entry.value, entry.versionstamp);
      }
    });
    return out;
  }
}

/** Every entry at these keys, in order (getMany takes at most 10 keys a call). */
async function getAll<T>(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const batches: Promise<Deno.KvEntryMaybe<T>[]>[] = [];
  for (let i = 0; i < keys.length; i += 10) batches.push(kv.getMany<T[]>(keys.slice(i, i + 10)));
  return (await Promise.all(batches)).flat();
}
