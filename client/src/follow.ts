/**
 * Following the user's orders: the first list, then the live connection (the app socket, the
 * stream over fetch, or polling) with everything that keeps the view exact — each event applied
 * once in seq order; a reset, a gap or a changed history reloads the list; reconnects with full
 * jitter; a watchdog for silent connections; credentials refreshed before they expire; polling
 * while the server's feed is degraded; nothing live in the background.
 */
import { type Api, expiryOf, Timers } from "./api.ts";
import { type Live, type LiveHandlers, openSocket, openStream } from "./transports.ts";
import type { Emitter } from "./events.ts";
import { BlotterError, type ClientOptions, type ClientState, type ReloadReason } from "./types.ts";
import { onPageBack, parseStored, replaceWithList } from "./view_load.ts";
import type { OrderView } from "./view.ts";

type Transport = "websocket" | "sse" | "polling";

/** Reconnects back off with full jitter between these (ms); polls come this often. */
const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10_000, POLL_MS = 3_000;

/** The live side of a client: its connection, its timers and its state. */
export class Follow {
  #state: ClientState = "closed";
  readonly #transports: Transport[];
  /** The transport tried now: the next after one that never came up; back to the first after. */
  #tried = 0;
  #live: Live | null = null;
  #attempt = 0;
  #cameUp = false;
  #authRetried = false;
  #degraded = false;
  #foreground = true;
  #pauses = 0; // a list read across a pause is not applied
  #running = false;
  #heartbeatMs = 15_000;
  #resumedFromFullId = false;
  /** A reload under way: no connection opens meanwhile (it would start from the old position). */
  #reloading = false;
  #watching = false;
  readonly #timers = new Timers();
  /** The error that closed the client (bad credentials), for the app to show. */
  error: BlotterError | null = null;

  constructor(
    private readonly o: ClientOptions,
    private readonly api: Api,
    private readonly view: OrderView,
    private readonly events: Emitter,
  ) {
    const ws = o.WebSocket ?? globalThis.WebSocket;
    const all: Transport[] = ws ? ["websocket", "sse", "polling"] : ["sse", "polling"];
    const t = o.transport ?? "auto";
    this.#transports = t === "auto" ? all : [t];
  }

  /** The connection's state. */
  get state(): ClientState {
    return this.#state;
  }

  /** Loads the first list (or the stored view) and goes live; resolves once the list is there. */
  async start(): Promise<void> {
    this.#running = true;
    this.error = null;
    this.#watching ||= onPageBack(() => this.#running && this.#reconnectNow());
    const stored = parseStored(await this.o.storage?.get());
    if (stored) {
      this.view.replace(stored.orders, stored.lastEventId);
      for (const o of this.view.orders()) this.events.emit("order", o, null);
    } else await this.#load("start");
    this.#connect();
  }

  /** Closes everything; the view stays readable. */
  async stop(): Promise<void> {
    const saving = this.#timers.pending("persist");
    this.#running = false;
    this.#drop();
    this.#timers.clearAll();
    this.#setState("closed");
    // A save still waiting is made now: the next start shows the view as it was.
    if (saving) await this.o.storage?.set(JSON.stringify(this.view.toJSON()));
  }

  /** In the background the live connection closes (push alerts take over); back, it resumes. */
  setForeground(foreground: boolean): void {
    this.#foreground = foreground;
    if (!this.#running) return;
    if (!foreground) {
      this.#pauses++;
      this.#drop();
      this.#setState("paused");
    } else if (!this.#live) this.#reconnectNow(); // a healthy connection is kept
  }

  // --- the live connection ----------------------------------------------------------------------

  async #connect(): Promise<void> {
    if (!this.#running || !this.#foreground || this.#live || this.#reloading) return;
    const transport = this.#transports[this.#tried];
    if (transport === "polling") {
      // Chosen, it is the transport; fallen back to, one round, then the live ones again.
      if (this.#transports.length === 1) return this.#poll(true);
      await this.#poll(false);
      this.#tried = 0;
      return this.#retry();
    }
    this.#setState(this.#attempt === 0 && !this.#cameUp ? "connecting" : "reconnecting");
    const token = await this.api.token().catch(() => undefined);
    if (token === undefined) return this.#retry();
    if (!this.#running || !this.#foreground || this.#live) return;
    // Before the user's first event the view is exact at seq 0: resume from there, never "live
    // from now" (what happened while connecting would be missed).
    const lastEventId = this.view.lastEventId ?? "0";
    this.#resumedFromFullId = lastEventId?.includes(".") ?? false;
    const options = { baseUrl: this.o.baseUrl, token, lastEventId };
    const me: { live: Live | null } = { live: null };
    const h = this.#handlers(me);
    this.#live = me.live = transport === "websocket"
      ? openSocket(options, this.o.WebSocket ?? globalThis.WebSocket, h)
      : openStream(options, this.api.fetch, h);
    this.#feedWatchdog();
    this.#scheduleRefresh(token);
  }

  /** What one connection (`me.live`) tells; once it is no longer the current one, nothing. */
  #handlers(me: { live: Live | null }): LiveHandlers {
    let mine = true;
    const current = () => mine && me.live !== null && this.#live === me.live;
    const handlers: LiveHandlers = {
      ready: () => {
        if (!current()) return;
        this.#attempt = 0;
        this.#cameUp = true; // from now on a drop reconnects on this transport
        this.#authRetried = false;
        // A new connection starts healthy: the server says "degraded" again if it still is.
        this.#degraded = false;
        this.#timers.clear("poll");
        this.#setState("live");
      },
      heartbeat: (ms) => {
        this.#heartbeatMs = ms;
        if (current()) this.#feedWatchdog(); // the watchdog armed before this knew no interval
      },
      alive: () => current() && this.#feedWatchdog(),
      event: (e) => {
        if (!current()) return;
        this.#resumedFromFullId = false;
        const applied = this.view.apply(e);
        if (applied === "applied") {
          this.events.emit("order", e.order, e);
          this.#persist();
        } else if (applied === "gap") this.#restart("gap");
      },
      reset: (_id, reason) => {
        if (!current()) return;
        const history = /history/.test(reason) || this.#resumedFromFullId;
        this.#restart(history ? "history" : "reset");
      },
      status: (realtime) => {
        if (!current()) return;
        this.#degraded = realtime === "degraded";
        if (this.#degraded) this.#poll(false);
        else {
          this.#timers.clear("poll");
          this.#setState("live");
        }
      },
      closed: (why) => {
        if (!current()) return;
        mine = false;
        this.#live = null;
        this.#timers.clear("watchdog");
        if (!this.#running || !this.#foreground) return;
        if (why.status === 401 || why.code === 4401 || why.code === 4403) {
          // Credentials: asked once more (a refreshed token), then closed with the error.
          if (this.#authRetried || why.code === 4403) {
            this.error = why.code === 4403
              ? new BlotterError(403, "forbidden", "this device's session was revoked")
              : new BlotterError(401, "unauthenticated", "the credentials were refused");
            this.#running = false;
            return this.#setState("closed");
          }
          this.#authRetried = true;
          return void this.#connect();
        }
        if (!this.#cameUp && this.#tried < this.#transports.length - 1 && why.code !== 4429) {
          this.#tried++; // this transport did not come up: the next one, at once
          return void this.#connect();
        }
        this.#retry(why.retryAfter);
      },
    };
    return handlers;
  }

  /** Reloads the list (a reset, a gap, a changed history), then connects again from it. */
  async #restart(why: ReloadReason): Promise<void> {
    this.#drop();
    this.#reloading = true;
    try {
      await this.#load(why, true);
    } catch {
      return this.#retry();
    } finally {
      this.#reloading = false;
    }
    this.#connect();
  }

  /** Reconnects after a backoff with full jitter (or as the server asked). */
  #retry(afterS = 0): void {
    if (!this.#running || !this.#foreground) return;
    const offline =
      (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false;
    this.#setState(offline ? "offline" : "reconnecting");
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt++);
    this.#timers.after(
      "retry",
      Math.max(afterS * 1000, Math.random() * cap),
      () => this.#connect(),
    );
  }

  #reconnectNow(): void {
    this.#drop();
    this.#attempt = 0;
    this.#connect();
  }

  /** Drops a connection silent for three heartbeat intervals (a zombie: it pings, carries nothing). */
  #feedWatchdog(): void {
    this.#timers.after("watchdog", 3 * this.#heartbeatMs, () => {
      this.#live?.close();
      this.#live = null;
      this.#retry();
    });
  }

  /** Asks for the token again before it expires, and hands it to the open connection. */
  #scheduleRefresh(token: string | null): void {
    const exp = expiryOf(token);
    if (exp === null || typeof this.o.token !== "function") return;
    const wait = Math.max((exp - Date.now()) * 0.8, exp - Date.now() - 30_000, 1_000);
    // setTimeout holds at most ~24.8 days (longer fires at once): a far expiry is looked at again.
    if (wait > 2 ** 31 - 1) {
      return this.#timers.after("refresh", 2 ** 31 - 1, () => this.#scheduleRefresh(token));
    }
    this.#timers.after("refresh", wait, async () => {
      const fresh = await this.api.token().catch(() => null);
      if (!this.#running) return;
      if (fresh && this.#live?.refresh(fresh)) this.#scheduleRefresh(fresh);
      else this.#reconnectNow(); // the stream takes new credentials by reconnecting
    });
  }

  /** Polls the list: the polling transport (`healthy`), or while the feed is degraded. */
  async #poll(healthy: boolean): Promise<void> {
    if (!this.#running || !this.#foreground) return;
    this.#setState("polling");
    try {
      // Alone (no live connection applying events), the list is the truth, even an older one.
      await this.#load(null, this.#live === null);
      if (healthy) this.#attempt = 0;
    } catch {
      // The next round tries again.
    }
    if (!this.#running || !this.#foreground) return;
    if (healthy || this.#degraded) this.#timers.after("poll", POLL_MS, () => this.#poll(healthy));
  }

  /** Closes the live connection and every timer but the pending save of the view. */
  #drop(): void {
    this.#live?.close();
    this.#live = null;
    this.#timers.clearAll("persist");
  }

  // --- the list and the view --------------------------------------------------------------------

  /** Reads every page of the list (all statuses: an ended order must leave "open" too) and applies
   * it as `replaceWithList` decides, unless paused meanwhile (the app is back later; not at start). */
  async #load(why: ReloadReason | null, alone = true): Promise<void> {
    const pauses = this.#pauses;
    const list = await this.api.list();
    if (!this.#running || (why !== "start" && pauses !== this.#pauses)) return;
    if (replaceWithList(this.view, this.events, list, why, alone)) this.#persist();
  }

  /** Saves the view at most every 250 ms (a steady flow of events still gets saved). */
  #persist(): void {
    const storage = this.o.storage;
    if (!storage || this.#timers.pending("persist")) return;
    this.#timers.after("persist", 250, () => storage.set(JSON.stringify(this.view.toJSON())));
  }

  #setState(state: ClientState): void {
    if (state !== this.#state) (this.#state = state, this.events.emit("state", state));
  }
}
