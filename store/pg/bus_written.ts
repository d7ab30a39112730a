/**
 * Which users this instance wrote for, told to every instance in small batches, so that their
 * state caches (state_cache.ts) forget them. The cache is only a hint — the fast write checks
 * every user's seq and falls back when it moved — but without this an instance would learn of
 * another's write for a user it does not serve only by a fast write that fails (with NOTIFY, every
 * instance hears every write). A batch is one short message of user ids every BATCH_MS at most:
 * tiny beside the events themselves, which go only where they are served.
 */

/** How long written users gather before they are told (a user's next report is far later). */
const BATCH_MS = 20;
/** Ids per message at most (a user id is at most a few hundred bytes). */
const PER_MESSAGE = 1_000;

/** Gathers written users and tells them in batches. */
export class WrittenUsers {
  #pending = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `tell` publishes one batch (a JSON array of user ids). */
  constructor(private readonly tell: (payload: string) => void) {}

  /** A write for this user was committed here. */
  add(userId: string): void {
    this.#pending.add(userId);
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.flush(), BATCH_MS);
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  /** Tells what has gathered now (also at close). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    const users = [...this.#pending];
    this.#pending = new Set();
    // In pieces well under a server's max_payload (1 MB by default; ids are short).
    for (let i = 0; i < users.length; i += PER_MESSAGE) {
      this.tell(JSON.stringify(users.slice(i, i + PER_MESSAGE)));
    }
  }
}

/** The users of a batch heard from another instance (none if it is not a list of ids). */
export function writtenUsers(payload: string): string[] {
  try {
    const users: unknown = JSON.parse(payload);
    return Array.isArray(users) ? users.filter((u): u is string => typeof u === "string") : [];
  } catch {
    return [];
  }
}
