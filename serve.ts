/**
 * The HTTP server adapter, kept to this one module so it can change (DESIGN.md's field notes:
 * the server and the stream body decide most of the memory per open stream). Today: Deno.serve.
 */
import type { Hono } from "hono";
// deno-lint-ignore no-explicit-any
type AnyHono = Hono<any>;

/** A listening server. */
export interface Server {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting connections and resolves when open requests have ended. */
  shutdown(): Promise<void>;
}

/** Serves the app on host:port (port 0 picks a free one). */
export function serve(app: AnyHono, options: { port: number; host: string }): Server {
  const server = Deno.serve({
    port: options.port,
    hostname: options.host,
    onListen: () => {},
    // A client that vanished mid-response is routine for streams; nothing to log.
    onError: () => new Response("internal error", { status: 500 }),
  }, app.fetch);
  return {
    port: server.addr.port,
    shutdown: () => server.shutdown(),
  };
}
