/**
 * Shared test plumbing: a real Blotter on a real socket (port 0), dev-mode sessions, and an SSE
 * reader over a real connection. No mocks: the store, the server and the streams are the product's.
 */
import { loadConfig } from "../config.ts";
import { silentLogger } from "../log.ts";
import { type RunningBlotter, startBlotter } from "../main.ts";

/** The ingest token test servers accept. */
export const INGEST_TOKEN = "test-ingest-token-0123456789";

/** A running test server. */
export interface TestServer extends RunningBlotter {
  url: string;
}

/** Starts Blotter on a free port with test-friendly settings (KV in memory unless overridden). */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const config = loadConfig({
    AUTH_MODE: "dev",
    KV_PATH: ":memory:",
    PORT: "0",
    SIMULATOR: "off",
    SIM_SPEED: "0.05",
    INGEST_TOKEN,
    RATE_LIMIT: "off",
    ...env,
  });
  const running = await startBlotter(config, silentLogger);
  return { ...running, url: `http://127.0.0.1:${running.port}` };
}

/** Signs a user in through the API; returns the bearer token and session id. */
export async function login(
  url: string,
  username: string,
): Promise<{ token: string; session_id: string; user_id: string }> {
  const res = await fetch(`${url}/api/v1/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username }),
  });
  if (res.status !== 201) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return await res.json();
}

/** A parsed JSON answer; tests read into it freely. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** Calls the JSON API with a bearer token. */
export async function api(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${url}${path}`, {
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
    try {
      for await (const chunk of body) {
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

  /** Waits for the stream to end. */
  async ended(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("stream did not end");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.#controller.abort();
  }
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
