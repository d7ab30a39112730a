/**
 * The event bus between instances (EVENT_BUS_URL): NATS core pub/sub in place of NOTIFY, so that
 * an instance receives only the users it serves and no write takes Postgres' commit-time NOTIFY
 * lock. The instance that commits publishes each user's events on that user's subject; each
 * instance subscribes to a user's subject while it has a stream or socket of theirs (from the
 * first, until a little after the last); revokes, alert-target changes and "catch up" go to all.
 *
 * NATS core is at-most-once: the Postgres log stays the truth. A subscription is confirmed by the
 * server before a stream reads the log (`watch`), so nothing committed after that read is missed;
 * while the bus is down the change feed is down (streams say `degraded`, clients poll), and once
 * it is back every stream catches up from the log. An instance that published while it had no
 * bus asks every instance to catch up, as what it sent may never have arrived.
 */
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { OrderEvent } from "../../orders/model.ts";
import type { BusStatus, EventLog } from "../store.ts";
import type { Broadcast, EventBus, PgContext } from "./connect.ts";
import { eventPayload, NoticeQueue, parseNotice } from "./notices.ts";

/** How long a user's subscription outlives their last stream (a reconnect reuses it). */
export const LINGER_MS = 30_000;
/** The longest a new stream waits for its subscription to be confirmed before it reads anyway. */
const WATCH_WAIT_MS = 2_000;
/** Reconnect backoff before the first connection, doubling from the first to the last. */
const CONNECT_RETRY_MS = [250, 500, 1_000, 2_000];
/** A message's room besides its payload (headers, subject), below the server's max_payload. */
const PAYLOAD_MARGIN = 1_024;

/** One user's subscription: confirmed once `ready` settles; `linger` set while no stream is open. */
interface Watch {
  sub: Subscription | null;
  ready: Promise<void>;
  linger?: ReturnType<typeof setTimeout>;
}

/** A NATS subject token for a user id: itself when plain, else `~` + base64url (injective). */
export function subjectToken(userId: string): string {
  if (/^[A-Za-z0-9_-]{1,200}$/.test(userId)) return userId;
  const bytes = new TextEncoder().encode(userId);
  const b64 = btoa(String.fromCharCode(...bytes));
  return "~" + b64.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** The servers of an EVENT_BUS_URL, for a log line: hosts only, never credentials. */
export function busWhere(url: string): string {
  return url.split(",").map((s) => s.trim().replace(/^[a-z]+:\/\/(?:[^@/]*@)?/i, "")).join(",");
}

/** The NATS bus of one Postgres store. */
export class NatsBus implements EventBus {
  readonly #ctx: PgContext;
  readonly #url: string;
  readonly #notices: NoticeQueue;
  readonly #prefix: string;
  readonly #watches = new Map<string, Watch>();
  #nc: NatsConnection | null = null;
  #state: BusStatus["state"] = "connecting";
  /** Something was published while the bus was away: the others must catch up when it is back. */
  #unsent = false;
  #maxPayload = 1_048_576 - PAYLOAD_MARGIN;
  #published = 0;
  #received = 0;
  #closed = false;
  #onFirstConnect: () => void = () => {};

  constructor(ctx: PgContext, url: string, log: Pick<EventLog, "eventsSince">, schema: string) {
    this.#ctx = ctx;
    this.#url = url;
    this.#notices = new NoticeQueue(ctx, log);
    // Per schema, so instances of two deployments (or two test runs) on one NATS never mix.
    this.#prefix = `blotter.${schema}`;
  }

  /**
   * Connects in the background (retrying until it reaches a server or the store closes); resolves
   * once connected, or after `waitMs` with the bus still connecting (the feed is degraded until).
   */
  start(waitMs: number): Promise<void> {
    this.#connectLoop().catch((err) =>
      this.#ctx.log.error("the event bus stopped", { err: String(err) })
    );
    let bound: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      new Promise<void>((r) => this.#onFirstConnect = r),
      new Promise<void>((r) => bound = setTimeout(r, waitMs)),
    ]).finally(() => clearTimeout(bound));
  }

  /** The bus's state and counters. */
  status(): BusStatus {
    return {
      state: this.#state,
      subscriptions: this.#watches.size,
      published: this.#published,
      received: this.#received,
    };
  }

  /**
   * Starts receiving a user's events from other instances; resolves once the server has the
   * subscription (at once while the bus is away: its return brings a catch-up). Paired with
   * `unwatch`.
   */
  watch(userId: string): Promise<void> {
    const known = this.#watches.get(userId);
    if (known) {
      clearTimeout(known.linger);
      known.linger = undefined;
      return known.ready;
    }
    const watch: Watch = { sub: null, ready: Promise.resolve() };
    this.#watches.set(userId, watch);
    if (this.#nc) this.#subscribe(this.#nc, userId, watch);
    return watch.ready;
  }

  /** The user's last stream here ended: their subscription goes a little later. */
  unwatch(userId: string): void {
    const watch = this.#watches.get(userId);
    if (!watch || watch.linger) return;
    watch.linger = setTimeout(() => {
      this.#watches.delete(userId);
      watch.sub?.unsubscribe();
    }, LINGER_MS);
    Deno.unrefTimer(watch.linger as unknown as number);
  }

  /** Publishes one user's committed events on their subject. */
  publishEvents(userId: string, events: OrderEvent[]): void {
    this.#publish(
      `${this.#prefix}.u.${subjectToken(userId)}`,
      () => eventPayload(userId, events, this.#maxPayload),
    );
  }

  /** Tells every instance (a revoke, an alert-target change, a catch-up). */
  broadcast(notice: Broadcast): void {
    this.#publish(`${this.#prefix}.all`, () => JSON.stringify(notice));
  }

  /** Closes the connection; notices heard are delivered first. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#watches.values()) clearTimeout(w.linger);
    const nc = this.#nc;
    this.#nc = null;
    await nc?.close().catch(() => {});
    await this.#notices.delivered();
  }

  #publish(subject: string, payload: () => string): void {
    const nc = this.#nc;
    if (!nc || this.#state !== "connected") this.#unsent = true;
    if (!nc) return;
    try {
      // While reconnecting the client buffers it and sends it once back.
      nc.publish(subject, payload());
      this.#published++;
    } catch (err) {
      this.#unsent = true;
      this.#ctx.log.warn("publishing on the event bus failed", { err: String(err) });
    }
  }

  #subscribe(nc: NatsConnection, userId: string, watch: Watch): void {
    watch.sub = nc.subscribe(`${this.#prefix}.u.${subjectToken(userId)}`, {
      callback: (err, msg) => err ? this.#failed(err) : this.#hear(msg.string()),
    });
    if (this.#state !== "connected") return;
    let bound: ReturnType<typeof setTimeout> | undefined;
    watch.ready = Promise.race([
      nc.flush().then(() => true, () => false),
      new Promise<false>((r) => bound = setTimeout(r, WATCH_WAIT_MS, false)),
    ]).then((confirmed) => {
      clearTimeout(bound);
      // Not confirmed in time: the stream reads the log anyway, so once the server has the
      // subscription, the user's streams catch up from the log for what fell in between.
      if (!confirmed) nc.flush().then(() => this.#ctx.changes.resync(), () => {});
    });
  }

  #hear(payload: string): void {
    this.#received++;
    const notice = parseNotice(this.#ctx, payload);
    if (notice) this.#notices.hear(notice);
  }

  #failed(err: Error): void {
    this.#ctx.log.warn("an event bus subscription failed", { err: String(err) });
  }

  /** Connects, retrying with backoff; then follows the connection's status until it closes. */
  async #connectLoop(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        const nc = await connect({
          servers: this.#url.split(",").map((s) => s.trim()),
          name: "blotter",
          // Its own events reach this instance's listeners at commit; it must not hear them twice.
          noEcho: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          // A dead connection is noticed within ~10 s, not the client's default two minutes.
          pingInterval: 5_000,
          maxPingOut: 2,
          timeout: 5_000,
        });
        if (this.#closed) return void await nc.close();
        this.#nc = nc;
        await this.#connected(nc, "connected to the event bus");
        for await (const s of nc.status()) {
          if (s.type === "disconnect") this.#lost();
          else if (s.type === "reconnect") await this.#connected(nc, "the event bus is back");
        }
        return;
      } catch (err) {
        if (attempt === 0) {
          this.#ctx.log.warn("cannot reach the event bus yet; retrying", {
            servers: busWhere(this.#url),
            err: String(err),
          });
        }
        const wait = CONNECT_RETRY_MS[Math.min(attempt, CONNECT_RETRY_MS.length - 1)];
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** (Re)connected: subscribed to all it watches, it catches up (and so do the others, if owed). */
  async #connected(nc: NatsConnection, message: string): Promise<void> {
    if (nc.info) this.#maxPayload = nc.info.max_payload - PAYLOAD_MARGIN;
    // Once: after a reconnect the client has sent its subscriptions again itself.
    if (this.#state === "connecting") {
      nc.subscribe(`${this.#prefix}.all`, {
        callback: (err, msg) => err ? this.#failed(err) : this.#hear(msg.string()),
      });
      for (const [userId, watch] of this.#watches) this.#subscribe(nc, userId, watch);
    }
    // Re-subscriptions went out with the reconnect; the flush says the server has them.
    await nc.flush().catch(() => {});
    this.#state = "connected";
    if (this.#unsent) {
      this.#unsent = false;
      this.broadcast({ k: "resync" });
    }
    // Whatever changed while away was not heard: nothing cached can be trusted.
    this.#ctx.subs.clear();
    this.#ctx.cache.clear();
    this.#ctx.log.info(message, { servers: busWhere(this.#url) });
    this.#ctx.changes.up();
    this.#onFirstConnect();
  }

  #lost(): void {
    if (this.#state !== "connected") return;
    this.#state = "down";
    this.#ctx.subs.clear();
    this.#ctx.cache.clear();
    this.#ctx.log.warn("lost the event bus; reconnecting", { servers: busWhere(this.#url) });
    this.#ctx.changes.down("the event bus was lost");
  }
}
