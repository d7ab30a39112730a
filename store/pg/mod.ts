/**
 * The production store on Postgres (postgres.js), composed from one module per concern:
 *   connect.ts      the query pool, the schema, the shared context, "database away" → 503
 *   transaction.ts  the Writers pool and the pipelined write transaction (seq lock)
 *   write_set.ts    what a transaction writes, as one statement, and its hand-off at commit
 *   actions.ts      the user's writes (place, cancel, replace)
 *   reports.ts      the venue's reports, group-committed (fast path first, locked path after)
 *   fast_write.ts   a group decided on the cache, written by one conditional statement
 *   locked_path.ts  what the cache cannot decide: fresh reads under the owners' row locks
 *   state_cache.ts  recent users' seqs and order snapshots (bounded LRU), forgotten on NOTIFY
 *   reads.ts        order reads, paging and the event log
 *   notices.ts      what instances tell each other (events, revokes, alert-target changes)
 *   listener.ts     the LISTEN connection: the change feed by NOTIFY (and the inbox's wake-up)
 *   bus.ts          the NATS event bus (EVENT_BUS_URL): the change feed, per user, instead
 *   sessions.ts     sessions
 *   push.ts         push subscriptions, alert claims and the alert-target cache
 *   devices.ts      native push tokens (FCM, APNs)
 *   alert_targets.ts  whom to alert (both of the above), cached per user, forgotten on NOTIFY
 *   inbox.ts        the SQL inbox drain
 *
 * Every write either locks the user's counter row (a short transaction) or advances it only if it
 * still holds the seq the write was decided on (the fast path), takes the next seq, updates the
 * snapshot, appends the event and `pg_notify`s it (or, with the bus, publishes it after the
 * commit), so per user the order of seqs is the order of commits; the writer's own listeners hear
 * it at commit, every other instance's right after.
 */
import type { Store } from "../store.ts";
import { pgActions } from "./actions.ts";
import { connect, type PgStoreOptions, query } from "./connect.ts";
import { startListening } from "./listener.ts";
import { NatsBus } from "./bus.ts";
import { inboxDrain } from "./inbox.ts";
import { pgDevices } from "./devices.ts";
import { pgPush } from "./push.ts";
import { pgEventLog, pgOrderReads } from "./reads.ts";
import { ReportGroups } from "./reports.ts";
import { pgSessions } from "./sessions.ts";
import { openWriters } from "./transaction.ts";
import { probeValue, WriteGate } from "../write_gate.ts";
import { Fallbacks } from "../common.ts";

export { isNotUpYet, type PgStoreOptions } from "./connect.ts";

/** How long close() lets reports already handed in finish before it closes the pools anyway. */
const CLOSE_WAIT_MS = 5_000;
/** How long a start waits for the event bus before it goes on with the feed degraded. */
const BUS_START_WAIT_MS = 2_000;

/** Opens the Postgres store: connects, applies schema.sql, starts the listener. */
export async function openPgStore(url: string, options: PgStoreOptions): Promise<Store> {
  const ctx = await connect(url, options);
  const writers = openWriters(ctx, options.writeQueueLimit);
  const fallbacks = new Fallbacks();
  const groups = new ReportGroups(ctx, writers, fallbacks);
  // Every write is counted from hand-in to answer; past the limit, or with the disk full, it is
  // refused with a 503.
  const gate = new WriteGate({
    limit: options.writeQueueLimit,
    log: options.log,
    probe: () =>
      ctx.sql`insert into settings (key, value) values ('write_probe', ${probeValue()})
        on conflict (key) do update set value = excluded.value`,
  });
  const { applyReport } = gate.wrap(groups, ["applyReport"] as const);
  const eventLog = pgEventLog(ctx);
  const inbox = inboxDrain(ctx, { applyReport });
  const bus = options.eventBusUrl
    ? new NatsBus(ctx, options.eventBusUrl, eventLog, options.schema ?? "public")
    : null;
  // Before the listener starts: with a bus, LISTEN is for the inbox alone.
  ctx.bus = bus;
  ctx.changes.interest = bus;
  let listener: Awaited<ReturnType<typeof startListening>>;
  try {
    listener = await startListening(ctx, eventLog, inbox.wake);
  } catch (err) {
    // The database went away between the schema and LISTEN: close what was opened (main.ts
    // tries the whole open again).
    ctx.closed = true;
    await bus?.close();
    await writers.end().catch(() => {});
    await ctx.sql.end({ timeout: 0 }).catch(() => {});
    throw err;
  }

  // A bus that is not up yet is a degraded feed, not a failed start: it connects in the
  // background, and the start waits only a moment for it.
  await bus?.start(BUS_START_WAIT_MS);

  async function getSetting(key: string): Promise<string | null> {
    const [row] = await query(
      ctx,
      (sql) => sql<{ value: string }[]>`select value from settings where key = ${key}`,
    );
    return row?.value ?? null;
  }

  return {
    kind: "postgres",
    changes: ctx.changes,
    ...gate.wrap(pgActions(ctx, writers), ["placeOrder", "requestCancel", "requestReplace"]),
    applyReport,
    ...pgOrderReads(ctx),
    ...eventLog,
    ...pgSessions(ctx),
    ...pgPush(ctx),
    ...pgDevices(ctx),

    getSetting,

    async setSettingIfAbsent(key, value) {
      await query(
        ctx,
        (sql) =>
          sql`insert into settings (key, value) values (${key}, ${value}) on conflict do nothing`,
      );
      return (await getSetting(key))!;
    },

    async ping() {
      try {
        await ctx.sql`select 1`;
        return true;
      } catch {
        // Not swallowed: "false" is the answer /readyz reports (503).
        return false;
      }
    },

    unwritable: () => gate.unwritable(),
    get writesRefusedDiskFull() {
      return gate.refusedDiskFull;
    },
    reportFallbacks: () => fallbacks.counts(),
    bus: () => bus?.status() ?? null,

    async close() {
      // Reports already handed in are committed (or answered) before the pool closes.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        groups.idle(),
        new Promise((r) => timer = setTimeout(r, CLOSE_WAIT_MS)),
      ]);
      clearTimeout(timer);
      ctx.closed = true;
      await inbox.finished();
      await listener.delivered();
      await listener.end();
      await bus?.close();
      await writers.end();
      await ctx.sql.end({ timeout: 2 });
    },
  };
}
