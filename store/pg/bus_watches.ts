/**
 * The bus's per-user subscriptions: one per user while this instance serves them (kept
 * LINGER_MS after their last stream, so a reconnect reuses it), each confirmed by the server
 * before a stream reads the log, and caught up once more a moment later (a NATS cluster's other
 * servers learn of a subscription a little after the one it was made on).
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";

/** How long a user's subscription outlives their last stream (a reconnect reuses it). */
export const LINGER_MS = 30_000;
/** The longest a new stream waits for its subscription to be confirmed before it reads anyway. */
const WATCH_WAIT_MS = 2_000;
/** After a subscription is confirmed, when its user is caught up again (a cluster's other servers). */
const SETTLE_MS = 500;

/** One user's subscription: confirmed once `ready` settles; `linger` set while no stream is open. */
interface Watch {
  sub: Subscription | null;
  ready: Promise<void>;
  linger?: ReturnType<typeof setTimeout>;
}

/** What the watches ask of their bus. */
export interface WatchHost {
  /** The subject of a user's events. */
  subject(userId: string): string;
  /** Handles a message heard on a subscription. */
  hear(payload: string): void;
  /** A wait that the bus's close ends. */
  sleep(ms: number): Promise<void>;
  /** These users may have missed events routed before their subscription settled. */
  behind(userIds: string[]): void;
  /** Whether the connection is up now (else a subscription is confirmed by its reconnect). */
  connected(): boolean;
  /** Whether the bus has closed. */
  closed(): boolean;
  log: { warn(message: string, fields: Record<string, unknown>): void };
}

/** The users this instance receives from the bus. */
export class Watches {
  readonly #watches = new Map<string, Watch>();
  #settling = new Set<string>();

  constructor(private readonly host: WatchHost) {}

  /** How many users are subscribed to (lingering ones too). */
  get size(): number {
    return this.#watches.size;
  }

  /** Subscribes to a user on `nc` (null: not yet connected); resolves once confirmed. */
  watch(userId: string, nc: NatsConnection | null): Promise<void> {
    const known = this.#watches.get(userId);
    if (known) {
      clearTimeout(known.linger);
      known.linger = undefined;
      return known.ready;
    }
    const watch: Watch = { sub: null, ready: Promise.resolve() };
    if (this.host.closed()) return watch.ready;
    this.#watches.set(userId, watch);
    if (nc) this.#subscribe(nc, userId, watch);
    return watch.ready;
  }

  /** The user's last stream here ended: their subscription goes a little later. */
  unwatch(userId: string): void {
    const watch = this.#watches.get(userId);
    if (!watch || watch.linger || this.host.closed()) return;
    watch.linger = setTimeout(() => {
      this.#watches.delete(userId);
      watch.sub?.unsubscribe();
    }, LINGER_MS);
    Deno.unrefTimer(watch.linger as unknown as number);
  }

  /** Subscribes every watched user on a new connection. */
  subscribeAll(nc: NatsConnection): void {
    for (const [userId, watch] of this.#watches) this.#subscribe(nc, userId, watch);
  }

  /** Stops the linger timers (the connection's close ends the subscriptions). */
  close(): void {
    for (const w of this.#watches.values()) clearTimeout(w.linger);
  }

  #subscribe(nc: NatsConnection, userId: string, watch: Watch): void {
    try {
      watch.sub = nc.subscribe(this.host.subject(userId), {
        callback: (err, msg) => {
          if (err) this.host.log.warn("an event bus subscription failed", { err: String(err) });
          else this.host.hear(msg.string());
        },
      });
    } catch {
      // The connection closed itself: the next one subscribes every watched user and catches
      // them all up.
      watch.sub = null;
      return;
    }
    if (!this.host.connected()) return;
    const flushed = nc.flush().then(() => true, () => false);
    watch.ready = Promise.race([flushed, this.host.sleep(WATCH_WAIT_MS).then(() => false)])
      .then((confirmed) => {
        // This server has it; a cluster's other servers learn of it a little later, and what
        // they route meanwhile does not come here: the user is caught up once more after that.
        // Not confirmed in time, the stream reads the log anyway: the same catch-up covers it.
        if (confirmed) this.#settle(userId);
        else flushed.then(() => this.#settle(userId));
      });
  }

  /** Catches a user up from the log once their subscription has settled (batched). */
  #settle(userId: string): void {
    if (this.host.closed()) return;
    this.#settling.add(userId);
    if (this.#settling.size > 1) return;
    this.host.sleep(SETTLE_MS).then(() => {
      const users = [...this.#settling];
      this.#settling = new Set();
      if (!this.host.closed()) this.host.behind(users);
    });
  }
}
