/**
 * The event bus between instances (EVENT_BUS_URL): NATS core pub/sub in place of NOTIFY, so that
 * an instance receives only the users it serves and no write takes Postgres' commit-time NOTIFY
 * lock. The instance that commits publishes each user's events on that user's subject; each
 * instance subscribes to a user's subject while it has a stream or socket of theirs (from the
 * first, until a little after the last); revokes, alert-target changes and "catch up" go to all,
 * and so do the ids of the users each instance wrote for, batched (bus_written.ts).
 *
 * NATS core is at-most-once: the Postgres log stays the truth. A stream reads the log only once
 * its server has the user's subscription (`watch`), and the user is caught up once more a moment
 * later (other servers of a cluster learn of it a little after). While the bus is down the change
 * feed is down (streams say `degraded`, clients poll); once it is back every stream catches up
 * from the log, and since what was published just before a drop may never have arrived, the
 * instance asks every instance to catch up (events, and revokes and alert-target changes too).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { OrderEvent } from "../../orders/model.ts";
import type { BusStatus, EventLog } from "../store.ts";
import { busServers, busWhere, subjectToken } from "./bus_subjects.ts";
import { Watches } from "./bus_watches.ts";
import { WrittenUsers, writtenUsers } from "./bus_written.ts";
import type { Broadcast, EventBus, PgContext } from "./connect.ts";
import { eventPayload, NoticeQueue, parseNotice } from "./notices.ts";

/** Reconnect backoff while no connection is up, doubling from the first to the last. */
const CONNECT_RETRY_MS = [250, 500, 1_000, 2_000];
/** How long before a drop a publish may have been lost with it (pings notice in ~10 s). */
const UNSENT_WINDOW_MS = 15_000;
/** After a (re)connect, when everything is caught up once more (a cluster's other servers). */
const SETTLE_MS = 500;
/** A message's room besides its payload (headers, subject), below the server's max_payload. */
const PAYLOAD_MARGIN = 1_024;

/** The NATS bus of one Postgres store. */
export class NatsBus implements EventBus {
  readonly #ctx: PgContext;
  readonly #url: string;
  readonly #notices: NoticeQueue;
  readonly #prefix: string;
  readonly #watches: Watches;
  readonly #written: WrittenUsers;
  #nc: NatsConnection | null = null;
  /** The connection the watches and the broadcast subject are subscribed on. */
  #subscribedOn: NatsConnection | null = null;
  #state: BusStatus["state"] = "connecting";
  /** What was published may not have arrived: the others must catch up once the bus is back. */
  #unsent = false;
  #maxPayload = 1_048_576 - PAYLOAD_MARGIN;
  #published = 0;
  #received = 0;
  /** Batches of written users heard (kept apart: they come from every instance's writes). */
  #writtenHeard = 0;
  /** When this instance last published: a drop soon after may have lost it. */
  #lastPublished = -Infinity;
  #closed = false;
  #loop: Promise<void> = Promise.resolve();
  #onFirstConnect: () => void = () => {};
  /** Every wait under way, each ended at once by close(), so it leaves no timer behind. */
  readonly #sleepers = new Set<() => void>();

  constructor(ctx: PgContext, url: string, log: Pick<EventLog, "eventsSince">, schema: string) {
    this.#ctx = ctx;
    this.#url = url;
    this.#notices = new NoticeQueue(ctx, log);
    // Per schema, so instances of two deployments (or two test runs) on one NATS never mix.
    this.#prefix = `blotter.${schema}`;
    this.#written = new WrittenUsers((users) => this.#publish(`${this.#prefix}.w`, () => users));
    this.#watches = new Watches({
      subject: (userId) => `${this.#prefix}.u.${subjectToken(userId)}`,
      hear: (payload) => this.#hear(payload),
      sleep: (ms) => this.#sleep(ms),
      behind: (users) => ctx.changes.behind(users),
      connected: () => this.#state === "connected",
      closed: () => this.#closed,
      log: ctx.log,
    });
  }

  /**
   * Connects in the background (retrying until it reaches a server or the store closes); resolves
   * once connected, or after `waitMs` with the bus still connecting (the feed is degraded until).
   */
  start(waitMs: number): Promise<void> {
    this.#loop = this.#connectLoop().catch((err) =>
      this.#ctx.log.error("the event bus stopped", { err: String(err) })
    );
    return Promise.race([
      new Promise<void>((r) => this.#onFirstConnect = r),
      this.#sleep(waitMs),
    ]);
  }

  /** The bus's state and counters. */
  status(): BusStatus {
    return {
      state: this.#state,
      subscriptions: this.#watches.size,
      published: this.#published,
      received: this.#received,
      writtenHeard: this.#writtenHeard,
    };
  }

  /**
   * Starts receiving a user's events from other instances; resolves once the server has the
   * subscription (at once while the bus is away: its return brings a catch-up). Paired with
   * `unwatch`.
   */
  watch(userId: string): Promise<void> {
    return this.#watches.watch(userId, this.#nc);
  }

  /** The user's last stream here ended: their subscription goes a little later. */
  unwatch(userId: string): void {
    this.#watches.unwatch(userId);
  }

  /** Publishes one user's committed events on their subject. */
  publishEvents(userId: string, events: OrderEvent[]): void {
    if (this.#closed) return; // told by the others' sweep: nothing is published after close
    this.#written.add(userId);
    this.#publish(
      `${this.#prefix}.u.${subjectToken(userId)}`,
      () => eventPayload(userId, events, this.#maxPayload),
    );
  }

  /** Tells every instance (a revoke, an alert-target change, a catch-up). */
  broadcast(notice: Broadcast): void {
    this.#publish(`${this.#prefix}.all`, () => JSON.stringify(notice));
    // With noEcho this instance does not hear its own: a revoke reaches its listeners a turn
    // later, as its NOTIFY would (the caller has ended this instance's streams by then, with its
    // own reason); the callers apply the other kinds here themselves.
    if (notice.k === "revoke") this.#sleep(0).then(() => this.#notices.hear(notice));
  }

  /** Closes the connection, and waits for its loop and the notices heard to finish. */
  async close(): Promise<void> {
    this.#written.flush();
    this.#closed = true;
    this.#watches.close();
    for (const wake of [...this.#sleepers]) wake();
    const nc = this.#nc;
    this.#nc = null;
    await nc?.close().catch(() => {});
    await this.#loop;
    await this.#notices.delivered();
  }

  #publish(subject: string, payload: () => string): void {
    const nc = this.#nc;
    if (!nc || this.#state !== "connected") this.#unsent = true;
    if (!nc) return;
    try {
      nc.publish(subject, payload());
      this.#published++;
      this.#lastPublished = Date.now();
    } catch (err) {
      this.#unsent = true;
      this.#ctx.log.warn("publishing on the event bus failed", { err: String(err) });
    }
  }

  #hear(payload: string): void {
    this.#received++;
    const notice = parseNotice(this.#ctx, payload);
    if (notice) this.#notices.hear(notice);
  }

  /** A wait that close() ends, and that alone does not keep the process alive. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      Deno.unrefTimer(timer as unknown as number);
      this.#sleepers.add(done);
    });
  }

  /**
   * Connects, retrying with backoff; follows the connection's status until it closes; and when
   * the client gives up on it by itself (credentials refused), starts over with a new one.
   */
  async #connectLoop(): Promise<void> {
    const { servers, ...credentials } = busServers(this.#url);
    for (let attempt = 0; !this.#closed;) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          servers,
          ...credentials,
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
      } catch (err) {
        if (attempt === 0) {
          this.#ctx.log.warn("cannot reach the event bus; retrying", {
            servers: busWhere(this.#url),
            err: String(err),
          });
        }
        await this.#sleep(CONNECT_RETRY_MS[Math.min(attempt++, CONNECT_RETRY_MS.length - 1)]);
        continue;
      }
      if (this.#closed) return void await nc.close().catch(() => {});
      attempt = 0;
      // Taken before anything is awaited, so no disconnect goes unseen.
      const statuses = nc.status();
      this.#nc = nc;
      await this.#connected(nc, "connected to the event bus");
      for await (const s of statuses) {
        if (s.type === "disconnect") this.#lost("the event bus was lost");
        else if (s.type === "reconnect") await this.#connected(nc, "the event bus is back");
      }
      if (this.#closed) return;
      this.#nc = null;
      this.#lost("the event bus connection closed");
      this.#ctx.log.warn("the event bus connection closed; connecting again", {
        servers: busWhere(this.#url),
      });
      await this.#sleep(CONNECT_RETRY_MS[CONNECT_RETRY_MS.length - 1]);
    }
  }

  /** (Re)connected: subscribed to all it watches, it catches up (and so do the others, if owed). */
  async #connected(nc: NatsConnection, message: string): Promise<void> {
    if (nc.info) this.#maxPayload = nc.info.max_payload - PAYLOAD_MARGIN;
    // Once per connection: after a reconnect the client sends its subscriptions again itself.
    if (this.#subscribedOn !== nc) {
      this.#subscribedOn = nc;
      nc.subscribe(`${this.#prefix}.all`, {
        callback: (err, msg) => {
          if (err) this.#ctx.log.warn("the event bus subscription failed", { err: String(err) });
          else this.#hear(msg.string());
        },
      });
      this.#watches.subscribeAll(nc);
      // Every instance's written users: this instance's state cache forgets them.
      nc.subscribe(`${this.#prefix}.w`, {
        callback: (err, msg) => {
          if (err) return;
          this.#writtenHeard++;
          for (const u of writtenUsers(msg.string())) this.#ctx.cache.forget(u);
        },
      });
    }
    try {
      // The server has every subscription once this answers.
      await nc.flush();
    } catch {
      return; // gone again: its reconnect comes back here
    }
    if (this.#closed) return;
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
    // Our subscriptions went to one server; a cluster's others learn of them a moment later, and
    // what they routed meanwhile (events, revokes) is caught up once more after that.
    this.#sleep(SETTLE_MS).then(() => {
      if (!this.#closed && this.#state === "connected") this.#ctx.changes.resync();
    });
  }

  #lost(reason: string): void {
    if (this.#state !== "connected") return;
    this.#state = "down";
    // What was published just before the drop (within the pings that notice a dead link) may
    // never have reached the server.
    if (Date.now() - this.#lastPublished < UNSENT_WINDOW_MS) this.#unsent = true;
    this.#ctx.subs.clear();
    this.#ctx.cache.clear();
    this.#ctx.log.warn("lost the event bus; reconnecting", { servers: busWhere(this.#url) });
    this.#ctx.changes.down(reason);
  }
}
