/**
 * The Deno.serve adapter (the default; docs/tech-choices.md): streams as ReadableStream bodies.
 * Its accept loop ends on EMFILE (denoland/deno#10148) and it has no request-head timeout
 * (denoland/deno#3515); serve.ts's supervisor answers both by replacing the listener.
 */
import { escaped, type Fetchable, type Listen, type ServeOptions } from "./listener.ts";

/** Deno.serve: the accept loop ends on EMFILE (its `finished` rejects); open requests go on. */
export function denoListener(app: Fetchable, { host, log }: ServeOptions): Listen {
  const handler = (req: Request) => app.fetch(req);
  const onError = (err: unknown) => escaped(log, err);
  return (port) => {
    const server = Deno.serve({ port, hostname: host, onListen: () => {}, onError }, handler);
    // `finished` also settles on a clean shutdown; only a rejection is a failure.
    const failed = server.finished.then(() => new Promise<never>(() => {}));
    failed.catch(() => {});
    return Promise.resolve({
      port: server.addr.port,
      failed,
      // Deno.serve's graceful shutdown closes its connections that have no request in flight
      // (hyper's idle test) and lets the others finish: exactly a retirement.
      retire: () => server.shutdown(),
    });
  };
}
