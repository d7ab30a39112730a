/**
 * Shared test plumbing: a real Blotter on a real socket (port 0) for streams, or the same Blotter
 * called in-process through `app.request()` for plain requests (Hono's style); a Blotter spawned
 * as its own process; dev-mode sessions; an SSE reader over a real connection. No mocks: the
 * store, the app and the streams are the product's.
 */
import type { Store } from "../store/store.ts";
import { type Config, loadConfig } from "../config.ts";
import { createLogger, silentLogger } from "../log.ts";
import { assembleBlotter, type RunningBlotter, startBlotter } from "../main.ts";
import { Hub } from "../realtime/hub.ts";
import { Metrics } from "../realtime/metrics.ts";
import { createPushDispatcher } from "../realtime/push/dispatcher.ts";
import { createApp } from "../routes/app.ts";
import { openKvStore } from "../store/kv/mod.ts";

/** The ingest token test servers accept. */
export const INGEST_TOKEN = "test-ingest-token-0123456789";

/** A running test server. */
export interface TestServer extends RunningBlotter {
  url: string;
}

/** Test-friendly settings (KV in memory, dev auth, no venue, no rate limits) plus `env`. */
function testConfig(env: Record<string, string>): Config {
  return loadConfig({
    AUTH_MODE: "dev",
    KV_PATH: ":memory:",
    PORT: "0",
    SIMULATOR: "off",
    SIM_SPEED: "0.05",
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    // The suites run under each server adapter: `deno task test:alt-server` runs the socket suites under `HTTP_SERVER=node` (.ci/run).
    HTTP_SERVER: Deno.env.get("HTTP_SERVER"),
    ...busFor(env),
    ...env,
  });
}

/**
 * EVENT_BUS_URL for a server with these settings in the bus pass (`deno task test:bus`, where
 * TEST_EVENT_BUS_URL is set): every Postgres-backed server exchanges its events over NATS.
 */
function busFor(env: Record<string, string>): Record<string, string> {
  const bus = Deno.env.get("TEST_EVENT_BUS_URL");
  return bus && env.DATABASE_URL ? { EVENT_BUS_URL: bus } : {};
}

function testLogger() {
  return Deno.env.get("TEST_LOG") ? createLogger("debug") : silentLogger;
}

/** Starts Blotter on a free port with test-friendly settings (KV in memory unless overridden). */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const running = await startBlotter(testConfig(env), testLogger());
  return { ...running, url: `http://127.0.0.1:${running.port}` };
}

/** Blotter assembled as main.ts does (store, hub, feed, push), called without a socket. */
export interface InProcessBlotter {
  /** The origin requests carry; nothing listens there. */
  readonly url: string;
  /** Calls the app in-process (`app.request()`), as `fetch` would over the socket. */
  fetch(input: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/** Starts Blotter in-process with the same settings as `startServer`, for plain requests. */
export async function startInProcess(env: Record<string, string> = {}): Promise<InProcessBlotter> {
  const blotter = await assembleBlotter(testConfig(env), testLogger());
  return {
    url: "http://blotter.test",
    fetch: async (input, init) => await blotter.app.request(input, init),
    async stop() {
      await blotter.endStreams();
      await blotter.stop();
    },
  };
}

/** Where a test sends requests: a server's URL, a running server, or an in-process Blotter. */
export type Target = string | {
  readonly url: string;
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
};

/** Sends a request for `path` to `target`: over its socket, or through `app.request()`. */
export function send(target: Target, path: string, init?: RequestInit): Promise<Response> {
  if (typeof target === "string") return fetch(`${target}${path}`, init);
  return (target.fetch ?? fetch)(`${target.url}${path}`, init);
}

/** Signs a user in through the API; returns the bearer token and session id. */
export async function login(
  target: Target,
  username: string,
): Promise<{ token: string; session_id: string; user_id: string }> {
  const res = await send(target, "/api/v1/sessions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username }),
  });
  if (res.status !== 201) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return await res.json();
}

/** GETs `url` and answers its status, discarding the body (an unread body is a leaked resource). */
export async function statusOf(url: string): Promise<number> {
  const res = await fetch(url);
  await res.body?.cancel();
  return res.status;
}

/** A parsed JSON answer; tests read into it freely. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** Calls the JSON API with a bearer token. */
export async function api(
  target: Target,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await send(target, path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** One parsed SSE message. */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
  retry?: number;
  comment?: string;
}

/** Reads an SSE stream over a real connection, message by message. */
export class SseClient {
  readonly messages: SseMessage[] = [];
  readonly #controller = new AbortController();
  #waiters: Array<() => void> = [];
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  closed = false;
  status = 0;

  private constructor() {}

  /** Connects; resolves once the response headers are in. */
  static async open(url: string, headers: Record<string, string>): Promise<SseClient> {
    const client = new SseClient();
    const res = await fetch(url, { headers, signal: client.#controller.signal });
    client.status = res.status;
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      client.closed = true;
      return client;
    }
    client.#read(res.body);
    return client;
  }

  async #read(body: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = this.#reader = body.getReader();
    try {
      for (;;) {
        const { done, value: chunk } = await reader.read();
        if (done) break;
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const msg: SseMessage = { data: "" };
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) msg.comment = line.slice(1).trim();
            else {
              const [field, ...rest] = line.split(":");
              const value = rest.join(":").replace(/^ /, "");
              if (field === "id") msg.id = value;
              else if (field === "event") msg.event = value;
              else if (field === "data") data.push(value);
              else if (field === "retry") msg.retry = Number(value);
            }
          }
          msg.data = data.join("\n");
          this.messages.push(msg);
          this.#wake();
        }
      }
    } catch {
      // aborted or dropped
    }
    this.closed = true;
    this.#wake();
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    w.forEach((f) => f());
  }

  /** The `event: order` messages' payloads so far. */
  orders(): Array<{ seq: number; type: string; order: { id: string; status: string } }> {
    return this.messages.filter((m) => m.event === "order").map((m) => JSON.parse(m.data));
  }

  /** Waits until `predicate` holds (or the stream ends, or `timeoutMs` passes: then throws). */
  async until(predicate: (c: SseClient) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (this.closed) throw new Error("stream closed before the condition held");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting on the stream");
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits for the stream to end (woken by the reader, bounded by `timeoutMs`). */
  async ended(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("stream did not end");
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Hangs up: aborts the request and cancels the body, which drops the connection. */
  close(): void {
    this.#controller.abort();
    // The abort alone did not always drop the connection: in push_test, after the server (same
    // process) had sent a push with fetch, Deno's client kept the aborted stream's socket open
    // under the node:http adapter, so the server never heard the close. Cancelling the reader
    // closes the socket, as a closed tab does. It rejects only when the abort already ended it.
    this.#reader?.cancel().catch((err) => {
      if (!(err instanceof DOMException && err.name === "AbortError")) throw err;
    });
  }
}

/**
 * A port nothing listens on right now (for a server that must come back on the same port; a port
 * picked in advance can be taken meanwhile, so prefer port 0 where the port need not be known).
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls until `check` returns a value that is not undefined/false (bounded; no timing asserts). */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A Blotter running as its own process (for memory figures and log capture). */
export interface ServerProcess {
  url: string;
  pid: number;
  /** Everything the process has written to stdout and stderr so far. */
  output(): string;
  /** Whether the process has exited (it was not asked to). */
  exited(): boolean;
  /** SIGTERM, then waits for the exit; answers the whole output. */
  stop(): Promise<string>;
}

/**
 * Spawns `deno run main.ts` (or other deno `args`, e.g. a task) on port 0 and learns the bound port from its "listening" log line, so
 * no port is picked in advance (another process could take it first).
 */
export async function spawnServer(
  env: Record<string, string>,
  args = ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
  /** A command the server runs under, as a host would start it (e.g. `prlimit --nofile=256:256`). */
  under: string[] = [],
): Promise<ServerProcess> {
  // Only what the test says: an inherited DATABASE_URL (CI sets one) would put this server on the
  // shared database's default schema, where runs would see each other's data.
  const inherited = Deno.env.toObject();
  for (const name of Object.keys(inherited)) {
    if (/^(DATABASE_|AUTH_|INGEST_|VAPID_|PUSH_|SIM|KV_|EVENT_BUS_)/.test(name)) {
      delete inherited[name];
    }
  }
  const [command, ...prefix] = [...under, Deno.execPath()];
  const child = new Deno.Command(command, {
    args: [...prefix, ...args],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...inherited, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...busFor(env), ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let resolveUrl!: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      out += decoder.decode(chunk, { stream: true });
      const m = /"message":"Blotter is listening","url":"(http:[^"]+)"/.exec(out);
      if (m) resolveUrl(m[1]);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let startTimer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    listening,
    child.status.then((s) => {
      throw new Error(`server exited (${s.code}) before listening:\n${out}`);
    }),
    new Promise<never>((_, reject) => {
      startTimer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20_000);
    }),
  ]).finally(() => clearTimeout(startTimer));
  let exited = false;
  child.status.then(() => (exited = true));
  return {
    url,
    pid: child.pid,
    output: () => out,
    exited: () => exited,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await drained;
      return out;
    },
  };
}

/**
 * The app as main.ts assembles it (KV in memory, no server, no feed), for tests that read its
 * route table or call `app.request()`. Closes what it opened after `fn`.
 */
export async function withApp<T>(
  fn: (app: ReturnType<typeof createApp>) => Promise<T>,
  /** Changes to the store the app is given (a test's own failure, e.g. a ping that hangs). */
  alter: (store: Store) => Store = (store) => store,
): Promise<T> {
  const config = loadConfig({ AUTH_MODE: "dev", KV_PATH: ":memory:" });
  const opened = await openKvStore(":memory:");
  const store = alter(opened);
  const metrics = new Metrics();
  const hub = new Hub({ maxStreamsPerUser: 10, metrics });
  const push = await createPushDispatcher({ config, store, hub, metrics, log: silentLogger });
  try {
    return await fn(createApp({
      config,
      store,
      hub,
      push,
      metrics,
      log: silentLogger,
      feedStatus: () => ({ ok: true }),
      notAccepting: () => null,
      now: () => new Date(),
    }));
  } finally {
    await push.close();
    await opened.close();
  }
}
