/**
 * The HTTP server adapter, kept to this one module so it can change (DESIGN.md's field notes:
 * the server and the stream body decide most of the memory per open stream). Today: Deno.serve.
 */
import type { Hono } from "hono";
import type { Logger } from "./log.ts";
// deno-lint-ignore no-explicit-any
type AnyHono = Hono<any>;

/** A listening server. */
export interface Server {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting connections and resolves when open requests have ended. */
  shutdown(): Promise<void>;
}

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
    (err instanceof Error && err.name === "AbortError");
}

/** Serves the app on host:port (port 0 picks a free one); errors Hono did not answer are logged. */
export function serve(
  app: AnyHono,
  options: { port: number; host: string; log: Logger },
): Server {
  const { log } = options;
  const server = Deno.serve({
    port: options.port,
    hostname: options.host,
    onListen: () => {},
    // The app's own error handler answers every error a route throws, so what reaches here
    // escaped Hono: a bug worth a log line, unless the client simply went away mid-response.
    onError: (err) => {
      if (!isClientGone(err)) log.error("request failed outside the app's error handler", { err });
      return new Response("internal error", { status: 500 });
    },
  }, app.fetch);
  return {
    port: server.addr.port,
    shutdown: () => server.shutdown(),
  };
}
