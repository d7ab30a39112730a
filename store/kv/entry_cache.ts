/**
 * The KV entries a report group reads — orders' snapshots and users' seq counters — as this
 * process last read or wrote them, with their versionstamps, so that a group can be decided and
 * committed without reading them again (report_groups.ts). A hint, never the truth: the group's
 * atomic commit checks every entry it used at its cached versionstamp, so a stale one (a write by
 * the user's own action, another process on the same file) fails the commit as a whole, nothing
 * is written, and the group is decided again from fresh reads.
 *
 * Bounded: at most `cap` entries, least recently used first out.
 */

/** How many entries the cache keeps by default (an order and its owner's seq are two). */
export const KV_CACHE_ENTRIES = 50_000;

/** The cached entries of KV keys of the form [kind, id] (see the module comment). */
export class KvEntryCache {
  /** By `kind \0 id`, in least-recently-used order (a Map iterates in insertion order). */
  readonly #entries = new Map<string, Deno.KvEntry<unknown>>();

  constructor(readonly cap: number = KV_CACHE_ENTRIES) {}

  /** How many entries are cached. */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached entry at `key`, or undefined; marks it as recently used. */
  get<T>(key: readonly [string, string]): Deno.KvEntry<T> | undefined {
    const name = nameOf(key);
    const entry = this.#entries.get(name);
    if (entry === undefined) return undefined;
    this.#entries.delete(name);
    this.#entries.set(name, entry);
    return entry as Deno.KvEntry<T>;
  }

  /** Remembers what is at `key` as of `versionstamp` (a read's, or a commit's that wrote it). */
  set(key: readonly [string, string], value: unknown, versionstamp: string): void {
    const name = nameOf(key);
    this.#entries.delete(name);
    this.#entries.set(name, { key: [...key], value, versionstamp });
    while (this.#entries.size > this.cap) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
  }

  /** Forgets `key` (its write failed, or it is of no more use). */
  delete(key: readonly [string, string]): void {
    this.#entries.delete(nameOf(key));
  }
}

/** Unambiguous whatever the id holds: the kind is one of a few words without a NUL. */
function nameOf([kind, id]: readonly [string, string]): string {
  return `${kind}\0${id}`;
}
