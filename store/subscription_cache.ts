/**
 * A per-user cache in front of a lookup that runs on every fill: whom to alert (browsers' Web Push
 * subscriptions and the native apps' FCM/APNs tokens, together). Without it, every instance asks
 * Postgres once per fill, even for the many users who never subscribed. Entries are forgotten when
 * the store hears (NOTIFY) that a user's subscriptions or tokens changed on any instance, all at once when it may have missed such news (change feed down), and after `ttlMs`
 * in any case, as a backstop.
 */
export class SubscriptionCache<T> {
  readonly #entries = new Map<string, { value: readonly T[]; at: number }>();
  /** Lookups under way, so that concurrent misses for one user ask the store once. */
  readonly #inFlight = new Map<string, { epoch: number; value: Promise<T[]> }>();
  /** Bumped by every forget/clear: a lookup that raced one must not fill the cache. */
  #epoch = 0;

  constructor(
    private readonly ttlMs = 60_000,
    private readonly maxUsers = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The user's cached list, or `fetch`'s answer (cached unless something was forgotten while it
   * ran). A miss while another lookup for the user is under way, with nothing forgotten since it
   * began, shares that lookup's answer: every fill asks for the browser and the native targets at
   * once, and each would otherwise run both queries. With `usable` false (news may be missed right
   * now) the cache is neither read nor filled, nor a lookup shared.
   */
  async get(userId: string, fetch: () => Promise<T[]>, usable: boolean): Promise<T[]> {
    if (usable) {
      const hit = this.#entries.get(userId);
      if (hit && this.now() - hit.at < this.ttlMs) return [...hit.value];
      if (hit) this.#entries.delete(userId);
      const flying = this.#inFlight.get(userId);
      if (flying && flying.epoch === this.#epoch) return [...(await flying.value)];
    }
    const epoch = this.#epoch;
    const lookup = fetch();
    if (usable) this.#inFlight.set(userId, { epoch, value: lookup });
    let value: T[];
    try {
      value = await lookup;
    } finally {
      if (this.#inFlight.get(userId)?.value === lookup) this.#inFlight.delete(userId);
    }
    if (usable && epoch === this.#epoch) {
      // Oldest first out (a Map keeps insertion order): bounded memory, however many users.
      if (this.#entries.size >= this.maxUsers) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
      this.#entries.set(userId, { value: [...value], at: this.now() });
    }
    return value;
  }

  /** The user's subscriptions changed. */
  forget(userId: string): void {
    this.#entries.delete(userId);
    this.#epoch++;
  }

  /** Anything may have changed (the change feed was lost). */
  clear(): void {
    this.#entries.clear();
    this.#epoch++;
  }

  /** How many users are cached (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }
}
