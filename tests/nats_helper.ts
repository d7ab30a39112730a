/**
 * NATS for tests: the bus pass's server (TEST_EVENT_BUS_URL, `deno task test:bus`), and private
 * `nats-server`s on free ports that a test may stop and start again (TESTING.md). Without the
 * binary the bus tests are skipped with one line saying so, unless REQUIRE_NATS=1 (CI).
 */
import { freePort } from "./helpers.ts";

/** The bus pass: when set, every Postgres store and server in the tests uses this bus. */
export const TEST_BUS_URL: string | null = Deno.env.get("TEST_EVENT_BUS_URL") || null;

const NATS_SERVER = "/usr/sbin/nats-server";

/** True when the bus tests must be skipped (and says so once). */
export const NO_NATS: boolean = (() => {
  try {
    Deno.statSync(NATS_SERVER);
    return false;
  } catch {
    if (Deno.env.get("REQUIRE_NATS") === "1") {
      throw new Error(`REQUIRE_NATS=1 but ${NATS_SERVER} is missing (apt-get install nats-server)`);
    }
    console.warn("NATS tests skipped: no nats-server (see ../shared/TESTING.md)");
    return true;
  }
})();

/** A private nats-server on a free port, to stop and start again on the same port. */
export class NatsServer {
  readonly port = freePort();
  #child: Deno.ChildProcess | null = null;

  /** Where clients connect (EVENT_BUS_URL). */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts it; resolves once it takes connections. */
  async start(): Promise<void> {
    this.#child = new Deno.Command(NATS_SERVER, {
      args: ["-a", "127.0.0.1", "-p", String(this.port)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let i = 0; i < 100; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`nats-server did not start on port ${this.port}`);
  }

  /** Kills it (SIGKILL: no goodbye to its clients) and waits for it to be gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child) return;
    child.kill("SIGKILL");
    await child.status;
  }
}

/** Runs `fn` with a private nats-server, killed after. */
export async function withNats<T>(fn: (nats: NatsServer) => Promise<T>): Promise<T> {
  const nats = new NatsServer();
  await nats.start();
  try {
    return await fn(nats);
  } finally {
    await nats.kill();
  }
}

/**
 * A TCP proxy in front of a server, to cut one client's link while others keep theirs: `cut`
 * drops every connection through it and refuses new ones; `restore` takes them again.
 */
export class TcpProxy {
  readonly port = freePort();
  #listener: Deno.Listener | null = null;
  readonly #conns = new Set<Deno.Conn>();

  constructor(private readonly target: number) {}

  /** Where clients connect instead of the target. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts) taking connections. */
  restore(): void {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#listener = listener;
    (async () => {
      for await (const client of listener) this.#pipe(client);
    })().catch(() => {});
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#listener?.close();
    this.#listener = null;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    this.#conns.clear();
  }

  async #pipe(client: Deno.Conn): Promise<void> {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.target });
    } catch {
      client.close();
      return;
    }
    this.#conns.add(client).add(server);
    const end = () => {
      for (const c of [client, server]) {
        if (!this.#conns.delete(c)) continue;
        try {
          c.close();
        } catch { /* its pipe closed it already */ }
      }
    };
    client.readable.pipeTo(server.writable).catch(() => {}).finally(end);
    server.readable.pipeTo(client.writable).catch(() => {}).finally(end);
  }
}
