/**
 * The HTTP server adapter, kept to this one module so it can change (DESIGN.md's field notes:
 * the server and the stream body decide most of the memory per open stream). Two, chosen by
 * `HTTP_SERVER` (config.ts): `deno` (Deno.serve, streams as ReadableStream bodies) and `node`
 * (node:http through @hono/node-server, streams written straight to the response). The figures
 * behind the default are in docs/tech-choices.md.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Hono } from "hono";
import type { HttpServerKind } from "./config.ts";
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

/** What `serve` needs. */
export interface ServeOptions {
  port: number;
  host: string;
  log: Logger;
  /** Which server carries the app. */
  server: HttpServerKind;
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
    (err instanceof Error && (err.name === "AbortError" || /ECONNRESET|EPIPE/.test(String(err))));
}

/** Serves the app on host:port (port 0 picks a free one); errors Hono did not answer are logged. */
export function serve(app: AnyHono, options: ServeOptions): Promise<Server> {
  return options.server === "node"
    ? serveNode(app, options)
    : Promise.resolve(serveDeno(app, options));
}

/** The app's own error handler answers every error a route throws, so what reaches an adapter's
 * handler escaped Hono: a bug worth a log line, unless the client simply went away. */
function escaped(log: Logger, err: unknown): Response {
  if (!isClientGone(err)) log.error("request failed outside the app's error handler", { err });
  return new Response("internal error", { status: 500 });
}

function serveDeno(app: AnyHono, { port, host, log }: ServeOptions): Server {
  const server = Deno.serve({
    port,
    hostname: host,
    onListen: () => {},
    onError: (err) => escaped(log, err),
  }, app.fetch);
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}

/**
 * node:http with Hono's node adapter. A stream route asks the bindings for `openStreamSink` and
 * gets a sink over this request's response; once the stream has started, the route's Response
 * only carries the status and headers (after every middleware has added its own), which this
 * writes as the head before telling the adapter the response is already sent.
 */
function serveNode(app: AnyHono, { port, host, log }: ServeOptions): Promise<Server> {
  const listener = getRequestListener((req, env) => {
    let sink: NodeSink | undefined;
    // createServer below is HTTP/1.1 only, so the response is always a ServerResponse.
    const bindings = {
      ...env,
      openStreamSink: () => (sink = new NodeSink(env.outgoing as ServerResponse)),
    };
    const finish = (res: Response) => {
      if (!sink?.started) return res;
      sink.commit(res.status, res.headers);
      return RESPONSE_ALREADY_SENT;
    };
    const res = app.fetch(wholeRequest(req, env.incoming.headers), bindings);
    return res instanceof Promise ? res.then(finish) : finish(res);
  }, {
    errorHandler: (err) => escaped(log, err),
    // Left alone, the adapter swaps the process's global Request and Response for its own; any
    // other Deno.serve in the process (the tests' fake push services) then fails its responses.
    overrideGlobalObjects: false,
  });
  const server = createServer(listener);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        shutdown: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            // Keep-alive connections with no request in flight would hold close() open.
            server.closeIdleConnections();
          }),
      });
    });
  });
}

/**
 * The adapter's Request is a light stand-in (a real one is built only if asked for), which the
 * global Request constructor refuses as its input. Hono's body limit does exactly that for a body
 * of unknown length (chunked, or a DELETE with none), so such a request is handed over as a real
 * Request. Requests with a Content-Length, the venue's reports among them, keep the light one.
 */
function wholeRequest(req: Request, headers: IncomingHttpHeaders): Request {
  const method = req.method;
  if (method === "GET" || method === "HEAD") return req;
  if (headers["content-length"] !== undefined && headers["transfer-encoding"] === undefined) {
    return req;
  }
  // `duplex` (which a streamed body requires) is missing from Deno's RequestInit type.
  const init: RequestInit & { duplex: "half" } = {
    method,
    headers: req.headers,
    body: req.body,
    signal: req.signal,
    duplex: "half",
  };
  return new Request(req.url, init);
}

/** The events a sink reports (realtime/stream_sink.ts's SinkEvents, by shape). */
interface SinkEvents {
  gone(): void;
  drained(): void;
}

/**
 * A stream's sink over node:http's response (realtime/stream_sink.ts's StreamSink, by shape: this
 * floor does not import realtime/). `res.write` answers false once the response's buffer is past
 * its high-water mark; each write from then until `drain` is a message the client has not taken.
 * Writes before the head is written (the retry hint, in the same tick) wait in `#early`.
 */
class NodeSink {
  readonly hearsClose = true;
  started = false;
  #early: Uint8Array[] | null = [];
  #backlog = 0;
  #ended = false;
  readonly #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  start(events: SinkEvents): void {
    this.started = true;
    this.#res.on("close", () => events.gone());
    this.#res.on("drain", () => {
      this.#backlog = 0;
      events.drained();
    });
  }

  write(bytes: Uint8Array): boolean {
    if (this.#ended || this.#res.destroyed) return false;
    if (this.#early) this.#early.push(bytes);
    else if (!this.#res.write(bytes)) this.#backlog++;
    return true;
  }

  get backlog(): number {
    return this.#early ? this.#early.length : this.#backlog;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.#early) this.#res.end();
  }

  response(headers: Readonly<Record<string, string>>): Response {
    return new Response(null, { headers });
  }

  /** Writes the head the app decided, then what was written before it. */
  commit(status: number, headers: Headers): void {
    const head: Record<string, string> = {};
    headers.forEach((value, name) => (head[name] = value));
    this.#res.writeHead(status, head);
    this.#res.flushHeaders();
    const early = this.#early ?? [];
    this.#early = null;
    for (const bytes of early) this.#res.write(bytes);
    if (this.#ended) this.#res.end();
  }
}
