/**
 * Whether a node:http listener still accepts. Under Deno, node:net's accept stops for good after
 * EMFILE and says nothing (no `error` event, no callback), so the only way to know is to ask.
 */
import { connect, type Socket } from "node:net";

/** How often node:http's accept loop is checked, and how long a probe waits to be accepted. */
export const ACCEPT_PROBE_EVERY_MS = 5_000;
const ACCEPT_PROBE_WAIT_MS = 3_000;

/**
 * Checks that a node:http listener still accepts: connects to it and waits for the server's
 * `connection` event for that very socket. Under Deno, node:net's accept stops for good after
 * EMFILE and says nothing, so asking is the only way to know. One probe at a time; the server
 * tells it of every connection from the probe's address while it is in flight (`seen`).
 */
export class AcceptProbe {
  #inFlight: {
    localPort: number | null;
    /** Ports accepted before the probe's own `connect` said which one is its (either may come first). */
    early: Set<number>;
    done(alive: boolean): void;
  } | null = null;

  constructor(readonly port: number, readonly host: string) {}

  /** The server accepted `socket`: whether it was the probe (and then it is not served). */
  seen(socket: Socket): boolean {
    const probe = this.#inFlight;
    if (!probe || socket.remoteAddress !== this.host) return false;
    if (probe.localPort === socket.remotePort) {
      probe.done(true);
      return true;
    }
    if (probe.localPort === null) probe.early.add(socket.remotePort!);
    return false;
  }

  /**
   * Whether the listener accepted a probe within ACCEPT_PROBE_WAIT_MS. A probe that cannot even
   * connect (out of descriptors here too) answers "alive": the pressure check deals with that.
   */
  run(): Promise<boolean> {
    if (this.#inFlight) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const socket = connect({ port: this.port, host: this.host });
      const probe = {
        localPort: null as number | null,
        early: new Set<number>(),
        done: (alive: boolean) => {
          clearTimeout(timer);
          this.#inFlight = null;
          socket.destroy();
          resolve(alive);
        },
      };
      this.#inFlight = probe;
      socket.once("error", () => probe.done(true));
      socket.once("connect", () => {
        probe.localPort = socket.localPort!;
        if (probe.early.has(probe.localPort)) return probe.done(true);
        timer = setTimeout(() => probe.done(false), ACCEPT_PROBE_WAIT_MS);
      });
    });
  }
}
