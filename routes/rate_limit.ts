/**
 * Token buckets in memory: well above human and venue pace (CONTRACT), they only stop floods.
 * Per process; behind a load balancer each instance limits what reaches it.
 */
import { AppError } from "../orders/errors.ts";

/** A set of token buckets, one per key. */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #sweep = 0;

  /** `rate` tokens per second, up to `burst` saved. */
  constructor(readonly rate: number, readonly burst: number, readonly enabled = true) {}

  /** Takes `n` tokens for `key` or throws rate_limited (429) with Retry-After. */
  take(key: string, n = 1, now = Date.now()): void {
    if (!this.enabled) return;
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens < n) {
      this.#buckets.set(key, b);
      const retry = Math.max(1, Math.ceil((n - b.tokens) / this.rate));
      throw new AppError("rate_limited", `Too many requests; retry in ${retry} s`, {
        retry_after_s: retry,
      });
    }
    b.tokens -= n;
    this.#buckets.set(key, b);
    // Full buckets carry no information: drop them now and then so the map stays small.
    if (++this.#sweep % 10_000 === 0) {
      for (const [k, v] of this.#buckets) {
        if (v.tokens + ((now - v.at) / 1000) * this.rate >= this.burst) this.#buckets.delete(k);
      }
    }
  }
}

/** The limits the API applies (CONTRACT: ≥10 order actions/s per user, ≥5,000 reports/s per
 * ingest token, ≥5 logins/s per client address). */
export interface Limits {
  orderActions: RateLimiter;
  ingest: RateLimiter;
  logins: RateLimiter;
}

/** Creates the limits; `enabled` false (RATE_LIMIT=off) makes every take() a no-op. */
export function createLimits(enabled: boolean): Limits {
  return {
    orderActions: new RateLimiter(20, 40, enabled),
    ingest: new RateLimiter(10_000, 20_000, enabled),
    logins: new RateLimiter(10, 20, enabled),
  };
}
