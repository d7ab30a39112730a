/**
 * The one door every write goes through — reports and order actions, on both stores — and so the
 * one place that answers for what a write cannot do right now, with a 503 and a Retry-After:
 * - too many waiting (WRITE_QUEUE_LIMIT): a write counts from the moment it is handed to the
 *   store until it is answered; past the limit it is refused at once, before anything of it is
 *   queued, so a burst costs a refusal each rather than memory that grows with the burst;
 * - no room on the store's disk: the write failed and nothing of it was kept (a transaction, an
 *   atomic commit), so it is answered like an overload, not as a 500 a venue might not retry;
 *   the episode is logged once, /readyz names it until a write as large as a real one (a probe)
 *   succeeds again.
 * Either way the venue retries with the same exec_id and idempotency does the rest.
 */
import { Episode, type Logger, silentLogger } from "../log.ts";
import { AppError } from "../orders/errors.ts";

/** The default WRITE_QUEUE_LIMIT (CONTRACT.md). */
export const DEFAULT_WRITE_QUEUE_LIMIT = 5_000;
/** How soon a write refused for a full disk is asked to come back (space takes a person). */
const DISK_FULL_RETRY_S = 10;
/** While the disk is full, /readyz tries a write of its own at most this often. */
const PROBE_EVERY_MS = 1_000;

/** What an overloaded store answers: a 503 whose Retry-After says when to come back. */
export function overloaded(): AppError {
  return new AppError(
    "unavailable",
    "Too many writes are waiting; retry shortly with the same request",
    { retry_after_s: 1 },
  );
}

/** What a store out of disk answers: nothing was written; the same request later applies once. */
export function diskFull(): AppError {
  return new AppError(
    "unavailable",
    "The store's disk is full; nothing was written. Retry later with the same request",
    { retry_after_s: DISK_FULL_RETRY_S },
  );
}

/**
 * Whether a write failed for lack of disk space: Deno KV's SQLite says "database or disk is full"
 * (SQLITE_FULL); Postgres answers 53100 disk_full ("could not extend file …: No space left on
 * device"). A Postgres that PANICs on a full WAL drops its connections: that is already "the
 * database is unavailable".
 */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (code === "53100") return true;
  const message = err instanceof Error ? err.message : String(err);
  return /database or disk is full|No space left on device/i.test(message);
}

/**
 * What a store's write probe writes: 32 KB that no compressor shrinks, so that, like the writes
 * it stands for, it needs fresh pages (a Postgres TOAST table, KV's WAL). A few bytes would find
 * room in a page already there and call a full disk writable.
 */
export function probeValue(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24 * 1024));
  return btoa(String.fromCharCode(...bytes));
}

/** How a gate counts and refuses. */
export interface WriteGateOptions {
  /** WRITE_QUEUE_LIMIT. */
  limit?: number;
  log?: Logger;
  /** A write of the store's own (of `probeValue()`), tried by `unwritable()` while the disk is full. */
  probe?: () => Promise<unknown>;
}

/** Counts writes in flight, refuses new ones past the limit, and answers a full disk. */
export class WriteGate {
  readonly limit: number;
  #inFlight = 0;
  #refusedDiskFull = 0;
  #lastProbe = 0;
  readonly #full: Episode;
  readonly #probe: (() => Promise<unknown>) | undefined;

  constructor(options: WriteGateOptions = {}) {
    this.limit = options.limit ?? DEFAULT_WRITE_QUEUE_LIMIT;
    this.#probe = options.probe;
    this.#full = new Episode(options.log ?? silentLogger, {
      began: "the store's disk is full: writes are answered 503 until one succeeds",
      ended: "the store takes writes again",
      level: "error",
    });
  }

  /** How many writes are waiting or being written right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Writes refused because the disk was full, since start (for /metrics). */
  get refusedDiskFull(): number {
    return this.#refusedDiskFull;
  }

  /** Runs `task` as one counted write, or throws `overloaded()` / `diskFull()`. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.limit) throw overloaded();
    this.#inFlight++;
    try {
      const result = await task();
      // A small write can still find room on a full disk: only the probe, as large as a real
      // write, may say the episode is over (else it would flap with every sign-in).
      if (this.#full.active) void this.#tryProbe();
      return result;
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      this.#refusedDiskFull++;
      this.#full.occurred({ err: err instanceof Error ? err.message : String(err) });
      throw diskFull();
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * Why writes are refused right now, or null. While the disk is full, a write of the store's
   * own (`probeValue()`, as large as a real one) is tried, at most once a second, so that
   * readiness comes back by itself once space is freed, even when a load balancer has stopped
   * sending the writes that would show it.
   */
  async unwritable(): Promise<string | null> {
    if (this.#full.active) await this.#tryProbe();
    return this.#full.active ? "the store's disk is full" : null;
  }

  /** The probe, outside the count (it is not a refused report): its success ends the episode. */
  async #tryProbe(): Promise<void> {
    if (!this.#probe || Date.now() - this.#lastProbe < PROBE_EVERY_MS) return;
    this.#lastProbe = Date.now();
    try {
      await this.#probe();
      this.#full.resolved();
    } catch {
      // Still full, or the store is away: the episode goes on.
    }
  }

  /** The same write methods, each counted by this gate. */
  wrap<S extends object, K extends keyof S>(target: S, keys: readonly K[]): Pick<S, K> {
    const out = {} as Pick<S, K>;
    for (const k of keys) {
      const fn = target[k] as unknown as (...args: unknown[]) => Promise<unknown>;
      (out as Record<K, unknown>)[k] = (...args: unknown[]) =>
        this.run(() => fn.apply(target, args));
    }
    return out;
  }
}
