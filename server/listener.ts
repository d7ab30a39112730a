/**
 * What an HTTP server adapter is given and what it opens: one listening socket with the
 * connections it accepted (a Listener), which serve.ts's supervisor replaces when it must.
 */
import type { HttpServerKind } from "../config.ts";
import type { Logger } from "../log.ts";

/** What a server carries: the Hono app, or anything with its `fetch` (main.ts's front door). */
export interface Fetchable {
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/** What `serve` needs. */
export interface ServeOptions {
  port: number;
  host: string;
  log: Logger;
  /** Which server carries the app. */
  server: HttpServerKind;
  /** Counts accept-loop restarts, shed connections and head timeouts (realtime/metrics.ts's). */
  metrics?: { listenerEvents: { inc(labels: { event: string }): void } };
  /** The open-file limit in force (descriptors.ts); default: read from the process. */
  fileLimit?: number;
  /**
   * Connections the app holds open for long (the hub's streams and sockets). A shed cannot free
   * them, so the supervisor counts only the descriptors they do not hold when it decides to shed.
   */
  held?: () => number;
  /**
   * How long a connection may go without sending a complete request head, from its accept or its
   * previous response, before it is closed (node:http only; Deno.serve sheds under pressure).
   */
  headTimeoutMs?: number;
}

/** A client that opened a connection must have sent its request head within this long. */
export const HEAD_TIMEOUT_MS = 10_000;
/**
 * Errors that only say the client's connection is gone (a tab closed, a phone lost signal while
 * its stream was open). They are routine for long-lived streams, the stream already ends itself
 * on the request's abort signal, and logging them would bury real failures under noise.
 */
const CLIENT_GONE: ReadonlyArray<new (...args: never[]) => Error> = [
  Deno.errors.BrokenPipe,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.Interrupted,
  Deno.errors.BadResource,
];

/** Whether an error escaping a response only means the client went away. */
export function isClientGone(err: unknown): boolean {
  return CLIENT_GONE.some((kind) => err instanceof kind) ||
    (err instanceof Error && (err.name === "AbortError" || /ECONNRESET|EPIPE/.test(String(err))));
}

/** The app's own error handler answers every error a route throws, so what reaches an adapter's
 * handler escaped Hono: a bug worth a log line, unless the client simply went away. */
export function escaped(log: Logger, err: unknown): Response {
  if (!isClientGone(err)) log.error("request failed outside the app's error handler", { err });
  return new Response("internal error", { status: 500 });
}

/** One listening socket with the connections it accepted: what an adapter opens. */
export interface Listener {
  readonly port: number;
  /** Rejects when the accept loop stops by itself (EMFILE and the like); never settles else. */
  readonly failed: Promise<never>;
  /**
   * Stops accepting and closes, at once, the connections with no request in progress (silent
   * sockets, half-sent heads, idle keep-alive); resolves when the others' requests have ended.
   */
  retire(): Promise<void>;
}

/** Opens a listener on `port` (throws when it cannot bind, e.g. out of descriptors). */
export type Listen = (port: number) => Promise<Listener>;
