/**
 * Who hears what a store commits (the `ChangeSource` of both backends): listeners kept private
 * and told in turn. A listener that throws is logged and skipped, so the others still hear: the
 * write is committed and its callers are owed their answers, which a throw must neither undo nor
 * delay. KV's source is always connected; Postgres' is while its LISTEN connection is up.
 */
import type { Logger } from "../log.ts";
import type { UserEvent } from "../orders/model.ts";

/** Receives what the store commits, from this process or (Postgres) from any instance. */
export interface ChangeListener {
  /**
   * Events committed, in per-user seq order. May arrive late or twice after a reconnect.
   * `replayed`: told again rather than first heard (a resend's stored events, the bus's sweep).
   */
  events(events: UserEvent[], replayed?: boolean): void;
  /** A session was revoked: its streams must end. */
  sessionRevoked(sessionId: string, userId: string): void;
  /**
   * The change source is connected: called once on subscribe when it already is, and again after
   * every reconnect. What was committed or revoked meanwhile was NOT delivered: catch up here.
   */
  connected(): void;
  /** The change source was lost; events are not arriving until `connected` is called again. */
  disconnected(reason: string): void;
  /** These users may have missed events (a subscription that had not settled): catch them up. */
  behind?(userIds: string[]): void;
}

/** Where listeners subscribe to a store's commits (store/change_listeners.ts). */
export interface ChangeSource {
  /** Adds a listener; returns a function that removes it. */
  subscribe(listener: ChangeListener): () => void;
  /** Whether notifications are flowing right now (for /readyz and `status` events). */
  readonly connected: boolean;
  /**
   * Asks for a user's changes from other instances (the bus subscribes per user); resolves once
   * they flow, so a stream may then read the log. Absent where every instance hears everything.
   */
  watch?(userId: string): Promise<void>;
  /** This instance no longer serves the user (its last stream ended). */
  unwatch?(userId: string): void;
}

/** The listeners of one store's changes, and whether changes are flowing to them. */
export class ChangeListeners implements ChangeSource {
  readonly #listeners = new Set<ChangeListener>();
  #connected: boolean;

  /** `connecting`: what a listener that subscribes before the source is up is told. */
  constructor(
    private readonly log: Logger,
    options: { connected: boolean; connecting?: string },
  ) {
    this.#connected = options.connected;
    this.connecting = options.connecting ?? "the change feed is connecting";
  }

  private readonly connecting: string;

  /**
   * Where a per-user interest goes (the event bus); null where every change reaches every
   * instance (KV, LISTEN/NOTIFY).
   */
  interest: Pick<Required<ChangeSource>, "watch" | "unwatch"> | null = null;

  /** See `ChangeSource.watch`. */
  watch(userId: string): Promise<void> {
    return this.interest?.watch(userId) ?? Promise.resolve();
  }

  /** See `ChangeSource.unwatch`. */
  unwatch(userId: string): void {
    this.interest?.unwatch(userId);
  }

  /** Whether changes are flowing right now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Adds a listener, telling it at once whether changes are flowing. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    if (this.#connected) listener.connected();
    else listener.disconnected(this.connecting);
    return () => this.#listeners.delete(listener);
  }

  /** Tells every listener about committed events (in per-user seq order). */
  publish(events: UserEvent[], replayed = false): void {
    if (events.length === 0) return;
    this.#each("committed events", (l) => l.events(events, replayed));
  }

  /** Tells every listener a session was revoked. */
  revoked(sessionId: string, userId: string): void {
    this.#each("a revoked session", (l) => l.sessionRevoked(sessionId, userId));
  }

  /** Changes flow (again): every listener catches up from the log. */
  up(): void {
    this.#connected = true;
    this.#each("a reconnect", (l) => l.connected());
  }

  /** Changes stopped flowing; false when they already had. */
  down(reason: string): boolean {
    if (!this.#connected) return false;
    this.#connected = false;
    this.#each("a disconnect", (l) => l.disconnected(reason));
    return true;
  }

  /** These users may have missed changes: every listener catches them up from the log. */
  behind(userIds: string[]): void {
    if (userIds.length > 0) this.#each("users behind", (l) => l.behind?.(userIds));
  }

  /** Every listener catches up from the log, as after a reconnect (while connected). */
  resync(): void {
    if (this.#connected) this.#each("a resync", (l) => l.connected());
  }

  #each(what: string, tell: (listener: ChangeListener) => void): void {
    for (const l of this.#listeners) {
      try {
        tell(l);
      } catch (err) {
        this.log.error(`a change listener failed on ${what}`, { err: String(err) });
      }
    }
  }
}
