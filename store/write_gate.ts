/**
 * The bound on work waiting to be written (WRITE_QUEUE_LIMIT): reports and order actions count
 * from the moment they are handed to the store until they are answered. Past the limit a write
 * is refused at once with a 503 and a Retry-After, before anything of it is queued, so a burst
 * costs a refusal each rather than memory that grows with the burst; the venue retries with the
 * same exec_id and idempotency does the rest.
 */
import { AppError } from "../orders/errors.ts";

/** The default WRITE_QUEUE_LIMIT (CONTRACT.md). */
export const DEFAULT_WRITE_QUEUE_LIMIT = 5_000;

/** What an overloaded store answers: a 503 whose Retry-After says when to come back. */
export function overloaded(): AppError {
  return new AppError(
    "unavailable",
    "Too many writes are waiting; retry shortly with the same request",
    { retry_after_s: 1 },
  );
}

/** Counts writes in flight and refuses new ones past `limit`. */
export class WriteGate {
  #inFlight = 0;

  constructor(readonly limit: number = DEFAULT_WRITE_QUEUE_LIMIT) {}

  /** How many writes are waiting or being written right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs `task` as one counted write, or throws `overloaded()` when the limit is reached. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.limit) throw overloaded();
    this.#inFlight++;
    try {
      return await task();
    } finally {
      this.#inFlight--;
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
