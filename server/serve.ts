/**
 * The HTTP server: serves an app on one of two adapters, chosen by `HTTP_SERVER` (config.ts) —
 * `deno` (Deno.serve, deno_listener.ts) or `node` (node:http through @hono/node-server,
 * node_listener.ts); the figures behind the default are in docs/tech-choices.md — and keeps it
 * accepting whatever the clients do (the supervisor below, descriptors.ts).
 */
import { Episode } from "../log.ts";
import { denoListener } from "./deno_listener.ts";
import {
  openDescriptors,
  openFileLimit,
  pressureMarkFor,
  reservedDescriptors,
} from "./descriptors.ts";
import type { Fetchable, Listen, Listener, ServeOptions } from "./listener.ts";
import { nodeListener } from "./node_listener.ts";

export { type Fetchable, isClientGone, type ServeOptions } from "./listener.ts";

/** A listening server. */
export interface Server {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Why new connections are not being accepted right now, or null while they are (/readyz). */
  readonly notAccepting: string | null;
  /**
   * Whether one more long-held connection fits: false once the descriptors in use (the last
   * sample, plus the app's connections opened since) reach the pressure mark. The hub refuses
   * new streams and sockets then (503), rather than grow into the open-file limit.
   */
  roomForMore(): boolean;
  /** Stops accepting connections and resolves when open requests have ended. */
  shutdown(): Promise<void>;
}

/** How often the supervisor looks at the descriptors in use. */
const PRESSURE_CHECK_MS = 1_000;
/** After the accept loop stops, the first try to listen again; doubled up to the next. */
const RELISTEN_FIRST_MS = 50;
const RELISTEN_MAX_MS = 1_000;

/**
 * Serves the app on host:port (port 0 picks a free one) and keeps it accepting: errors Hono did
 * not answer are logged, and the listener is supervised (below).
 */
export async function serve(app: Fetchable, options: ServeOptions): Promise<Server> {
  const listen = options.server === "node"
    ? nodeListener(app, options)
    : denoListener(app, options);
  const supervisor = new ListenerSupervisor(listen, options);
  await supervisor.start(options.port);
  return supervisor;
}

/**
 * Keeps the server accepting whatever clients do (denoland/deno#10148: EMFILE ends Deno.serve's
 * accept loop; node:http's stops without a word). Past the open-file limit `accept` fails, so:
 * - when a listener's accept loop stops, it is retired (which frees the descriptors of every
 *   connection that holds one without a request) and a new one listens on the same port, retried
 *   with backoff until it binds — the process never exits for it, and open streams go on, since
 *   a retired listener's requests in progress run to their end;
 * - before it comes to that, when the descriptors in use pass the pressure mark, the listener is
 *   replaced the same way, which sheds a crowd of silent or idle sockets (slowloris) in one go —
 *   but only when such a crowd is there: Deno.serve's shutdown also ends upgraded connections
 *   (app sockets, with 1001), so when the app's own streams and sockets fill the descriptors, a
 *   shed would close every socket and free nothing. Then new ones are refused (`roomForMore`).
 * Connections are refused only in the moments between two listeners.
 */
class ListenerSupervisor implements Server {
  port = 0;
  notAccepting: string | null = null;
  #current: Listener | null = null;
  readonly #retiring = new Set<Promise<void>>();
  #stopped = false;
  #check: ReturnType<typeof setInterval> | undefined;
  /** A shed happened since the last check; the descriptors it left open (-1: none). */
  #justShed = false;
  #shedFloor = -1;
  readonly #paused: Episode;
  readonly #shedding: Episode;
  readonly #pressureMark: number;
  /**
   * Descriptors not held by the app's streams and sockets past which a shed is worth it: the
   * reserve, which budgets the process's own (store, pools, push senders), is then exceeded by
   * connections a shed can close.
   */
  readonly #shedWorth: number;
  /** The last sample (null until one was read): descriptors open, and the app's held then. */
  #open: number | null = null;
  #held = 0;

  constructor(readonly listen: Listen, readonly options: ServeOptions) {
    const limit = options.fileLimit ?? openFileLimit();
    this.#pressureMark = pressureMarkFor(limit);
    this.#shedWorth = reservedDescriptors(limit);
    this.#paused = new Episode(options.log, {
      began: "stopped accepting connections; listening again as soon as the system allows",
      ended: "accepting connections again",
      level: "error",
      // Under a sustained flood the loop may stop again the moment it restarts: one line for
      // the whole episode, and one when it has kept going for this long.
      quietMs: 10_000,
    });
    this.#shedding = new Episode(options.log, {
      began: "running short of open files: closing connections that hold one without a request",
      ended: "open files back under the mark",
      quietMs: 10_000,
    });
  }

  async start(port: number): Promise<void> {
    this.#adopt(await this.listen(port));
    this.#sample(); // roomForMore counts from here, not only from the first check
    this.#check = setInterval(() => this.#checkPressure(), PRESSURE_CHECK_MS);
    // The check alone must not keep the process (or a test) alive.
    Deno.unrefTimer(this.#check as unknown as number);
  }

  #adopt(listener: Listener): void {
    this.#current = listener;
    this.port = listener.port;
    this.notAccepting = null;
    listener.failed.catch((err) => {
      if (this.#current !== listener || this.#stopped) return;
      this.options.metrics?.listenerEvents.inc({ event: "accept_failed" });
      this.#paused.occurred({ reason: String(err), open_files: openDescriptors() });
      this.#replace("the accept loop stopped: " + reasonOf(err));
    });
  }

  roomForMore(): boolean {
    // Where descriptors cannot be counted, MAX_STREAMS alone decides.
    if (this.#open === null) return true;
    const held = this.options.held?.() ?? this.#held;
    return this.#open + (held - this.#held) < this.#pressureMark;
  }

  #sample(): number | null {
    const open = openDescriptors();
    if (open !== null) (this.#open = open, this.#held = this.options.held?.() ?? 0);
    return open;
  }

  #checkPressure(): void {
    const open = this.#sample();
    if (open === null || !this.#current || this.#stopped) return;
    if (this.#justShed) {
      this.#justShed = false;
      this.#shedFloor = open;
    }
    if (open < this.#pressureMark) {
      this.#shedFloor = -1;
      return;
    }
    // What a shed left open is busy (streams, requests in flight): shedding again frees nothing
    // until descriptors grow past what it left.
    if (open <= this.#shedFloor) return;
    // The app's own streams and sockets are what fill them: refused from now on (roomForMore).
    // (node:http's shed closes idle connections only, so there it costs nothing to try.)
    if (this.options.server !== "node" && open - this.#held <= this.#shedWorth) return;
    this.#justShed = true;
    this.options.metrics?.listenerEvents.inc({ event: "shed" });
    this.#shedding.occurred({ open_files: open, mark: this.#pressureMark });
    this.#replace("shedding idle connections: too many open files");
  }

  /** Retires the current listener and listens again, with backoff, until it binds. */
  async #replace(why: string): Promise<void> {
    const old = this.#current;
    if (!old) return;
    this.#current = null;
    this.notAccepting = why;
    this.#retire(old);
    for (let wait = RELISTEN_FIRST_MS; !this.#stopped; wait = Math.min(wait * 2, RELISTEN_MAX_MS)) {
      try {
        const listener = await this.listen(this.port);
        // Bound just as the server was shut down: it must not outlive shutdown().
        if (this.#stopped) this.#retire(listener);
        else this.#adopt(listener);
        return;
      } catch {
        // Still out of descriptors, or the old socket not yet closed: wait and try again.
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  #retire(listener: Listener): void {
    const done = listener.retire().catch(() => {}).finally(() => this.#retiring.delete(done));
    this.#retiring.add(done);
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#check);
    this.#paused.resolved();
    this.#shedding.resolved();
    if (this.#current) this.#retire(this.#current);
    this.#current = null;
    await Promise.all([...this.#retiring]);
  }
}

/** The short reason behind an accept failure, for /readyz (no stack, no paths). */
function reasonOf(err: unknown): string {
  const m = /Too many open files|os error \d+|E[A-Z]+/.exec(String(err));
  return m ? m[0] : "unexpected error";
}
