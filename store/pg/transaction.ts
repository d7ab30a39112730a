/**
 * Write transactions: the Writers pool (one-connection pools, one transaction at a time each) and
 * `write`, which runs lock → decide → write → COMMIT in as few round trips as Postgres allows.
 * Seq assignment starts here: `lockUser` locks a user's counter row and answers their seq.
 */
import postgres from "postgres";
import { DEFAULT_WRITE_QUEUE_LIMIT, overloaded } from "../write_gate.ts";
import { resync } from "./write_set.ts";
import {
  isConnectionError,
  type PgContext,
  serverChoice,
  type Sql,
  type Tx,
  unavailableIfConnection,
} from "./connect.ts";

/** Write transactions run on this many connections of their own (see `write`). */
const WRITERS = 6;
/**
 * A step of a write (a round trip) that has not answered in this long is given up: its writer's
 * connection is replaced and the write answered 503 (its outcome unknown: the caller's retry is
 * idempotent). Seen in the failover drill: after a primary was killed and a standby promoted, a
 * writer now and then never answered again, and with one report group in flight at a time every
 * later report waited behind it for ever.
 */
const WRITE_STALL_MS = 10_000;

/** A one-connection pool for transactions; `generation` counts its connection's closes. */
interface Writer {
  sql: Sql;
  generation: number;
}

/** Write connections: one-connection pools, handed out one transaction at a time. */
export class Writers {
  readonly #idle: Writer[] = [];
  readonly #all: Writer[] = [];
  /**
   * Writes waiting for a writer, in arrival order. Every write comes through the store's write
   * gate (WRITE_QUEUE_LIMIT in flight, store/write_gate.ts), so this never holds more than that;
   * `maxWaiting` says so outright: past it a write is refused (503) rather than queued.
   */
  readonly #waiting: Array<(w: Writer) => void> = [];
  /** Steps in flight (see `within`): when each began, and how to give it up. */
  readonly #steps = new Map<Writer, { since: number; giveUp: (err: Error) => void }>();
  #watch: ReturnType<typeof setInterval> | undefined;

  /**
   * `onLost` is told when a write's connection was lost with its outcome unknown (it may have
   * committed; its events then reach this instance only from the log).
   */
  constructor(
    count: number,
    private readonly open: (onclose: () => void) => Sql,
    private readonly onLost: () => void = () => {},
    private readonly maxWaiting = DEFAULT_WRITE_QUEUE_LIMIT,
  ) {
    for (let i = 0; i < count; i++) {
      const w: Writer = { sql: null as unknown as Sql, generation: 0 };
      w.sql = open(() => w.generation++);
      this.#all.push(w);
      this.#idle.push(w);
    }
  }

  /** The next idle writer (waits, in arrival order, while all are busy). */
  acquire(): Promise<Writer> {
    const w = this.#idle.pop();
    if (w) return Promise.resolve(w);
    if (this.#waiting.length >= this.maxWaiting) return Promise.reject(overloaded());
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a writer back (to the longest waiter, if any). */
  release(w: Writer): void {
    const next = this.#waiting.shift();
    if (next) next(w);
    else this.#idle.push(w);
  }

  /**
   * `work` on writer `w`, bounded by WRITE_STALL_MS: past it the writer gets a new connection
   * (the old one is ended, and whatever it still owes is dropped) and this rejects as a lost
   * connection. One watch for all writers, not a timer per step (a timer per step cost a few
   * percent of the server's CPU per report at 1,000/s).
   */
  within<T>(w: Writer, work: PromiseLike<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const settle = (then: () => void) => {
        if (done) return;
        done = true;
        this.#steps.delete(w);
        then();
      };
      this.#steps.set(w, { since: performance.now(), giveUp: (err) => settle(() => reject(err)) });
      this.#watchSteps();
      Promise.resolve(work).then(
        (value) => settle(() => resolve(value)),
        (err) => settle(() => reject(err)),
      );
    });
  }

  /** Looks at the steps in flight once a second while there are any; gives up the stalled ones. */
  #watchSteps(): void {
    if (this.#watch !== undefined) return;
    this.#watch = setInterval(() => {
      const now = performance.now();
      for (const [w, step] of this.#steps) {
        if (now - step.since < WRITE_STALL_MS) continue;
        const old = w.sql;
        w.generation++;
        w.sql = this.open(() => w.generation++);
        old.end({ timeout: 0 }).catch(() => {});
        step.giveUp(connectionLost());
      }
      if (this.#steps.size === 0) {
        clearInterval(this.#watch);
        this.#watch = undefined;
      }
    }, 1_000);
    // The watch alone must not keep the process alive.
    Deno.unrefTimer(this.#watch as unknown as number);
  }

  /** Says a write's connection was lost with its outcome unknown (see the constructor). */
  lost(): void {
    this.onLost();
  }

  /** Closes every writer's connection. */
  async end(): Promise<void> {
    clearInterval(this.#watch);
    this.#watch = undefined;
    await Promise.all(this.#all.map((w) => w.sql.end({ timeout: 2 })));
  }
}

/** Opens the store's writers, on the same database and schema as the query pool. */
export function openWriters(ctx: PgContext, maxWaiting?: number): Writers {
  return new Writers(
    WRITERS,
    (onclose) =>
      postgres(ctx.url, {
        ...serverChoice(ctx.url),
        max: 1,
        // Every statement planned once per connection (a generic plan, made on the first run
        // and kept until the table is analyzed), with every plan that reads a whole table or a
        // whole index ruled out: writers only touch rows by key, so the plan left is index
        // lookups in nested loops, right at any table size. A generic plan made while a table
        // was small otherwise scanned it, and kept scanning as it grew (seen with the exec_id
        // check and the fast write's user_seqs update; tests/store/pg_indexes_test.ts counts
        // rows and index entries read). Planning the fast write afresh for each group cost more
        // than a third of Postgres' CPU for a report written alone (bench/README.md).
        connection: {
          ...ctx.connection,
          plan_cache_mode: "force_generic_plan",
          enable_seqscan: "off",
          enable_hashjoin: "off",
          enable_mergejoin: "off",
        },
        onnotice: () => {},
        connect_timeout: 5,
        // Never recycled under a transaction (the default lifetime is 30-60 min): a writer's
        // connection ends only when the server or the network ends it.
        max_lifetime: null,
        onclose,
        debug: ctx.debug,
      }),
    () => resync(ctx),
    maxWaiting,
  );
}

/** The error for a transaction whose connection went away under it. */
function connectionLost(): Error {
  return Object.assign(new Error("the connection closed during the transaction"), {
    code: "CONNECTION_CLOSED",
  });
}

/**
 * One write transaction in as few round trips as Postgres allows: BEGIN is pipelined with
 * `lock` (which locks the user's counter row and answers their seq), `decide` reads what it
 * needs under that lock and returns the result with the one statement that writes it, and that
 * statement is pipelined with COMMIT (if it fails, the transaction is aborted and COMMIT rolls
 * it back).
 *
 * It runs on a writer: a one-connection pool of its own. Not `sql.begin` (in postgres.js 3.4.9
 * a BEGIN that lands in a busy connection's pipeline skips the reservation and fails with
 * UNSAFE_TRANSACTION under load, porsager/postgres#823/#1189) and not `sql.reserve()` (a
 * reserved connection that dies is put back as open on release, and the next query on it
 * writes to a null socket outside any promise, which kills the process; seen here restarting
 * Postgres under load). A one-connection pool reconnects by itself; its `onclose` tells us the
 * transaction's connection is gone, and then nothing more of it is sent.
 */
export async function write<T, L extends { seq: string }>(
  writers: Writers,
  lock: (tx: Tx) => Promise<L[]>,
  decide: (tx: Tx, locked: L[]) => Promise<{ result: T; write?: Promise<unknown> }>,
): Promise<T> {
  const w = await writers.acquire();
  const generation = w.generation;
  const tx = w.sql as unknown as Tx;
  try {
    try {
      const [, locked] = await writers.within(w, Promise.all([w.sql.unsafe("begin"), lock(tx)]));
      const { result, write } = await writers.within(w, decide(tx, locked));
      // If the connection dropped after BEGIN, the reads above ran on a new one outside the
      // transaction and the lock is gone: write nothing.
      if (w.generation !== generation) throw connectionLost();
      // Both answered: the commit happened. (A drop after this point changes nothing; calling it
      // a failure would make clients retry what is already stored.)
      await writers.within(w, Promise.all([write, w.sql.unsafe("commit")]));
      return result;
    } catch (err) {
      // After a query's own failure the transaction is open (aborted): end it. After the
      // connection dropped, BEGIN may have run again on its replacement (a transaction with
      // row locks open there): end that too. Only a plain loss of the connection needs nothing.
      if (!isConnectionError(err) || w.generation !== generation) {
        // Bounded: while the database is away a queued ROLLBACK waits for a reconnect. It stays
        // queued ahead of the writer's next BEGIN on the same single connection either way.
        let bound: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          // The rollback's own failure is not the caller's error: `err` below is.
          w.sql.unsafe("rollback").catch(() => {}),
          new Promise((r) => (bound = setTimeout(r, 2_000))),
        ]).finally(() => clearTimeout(bound));
      }
      throw err;
    }
  } catch (err) {
    if (isConnectionError(err)) writers.lost();
    throw unavailableIfConnection(err);
  } finally {
    writers.release(w);
  }
}

/** Locks the user's counter row (creating it on their first order) and answers their seq. */
export function lockUser(tx: Tx, userId: string) {
  return tx<{ user_id: string; seq: string }[]>`
    insert into user_seqs (user_id, seq) values (${userId}, 0)
    on conflict (user_id) do update set seq = user_seqs.seq
    returning user_id, seq`;
}
