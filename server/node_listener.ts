/**
 * The node:http adapter (`HTTP_SERVER=node`: Deno's node:http through @hono/node-server), whose
 * streams are written straight to the response. Four times less memory per idle stream than
 * Deno.serve, more CPU per request (docs/tech-choices.md).
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { ACCEPT_PROBE_EVERY_MS, AcceptProbe } from "./accept_probe.ts";
import { openFileLimit, reservedDescriptors } from "./descriptors.ts";
import {
  escaped,
  type Fetchable,
  HEAD_TIMEOUT_MS,
  type Listen,
  type ServeOptions,
} from "./listener.ts";

/** The address a probe connects from and to: the bound one, or loopback for a wildcard. */
export function loopbackFor(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host === "localhost" ? "127.0.0.1" : host;
}

/** Per connection under node:http: whether a request is in progress, and its head timer. */
interface NodeConnection {
  busy: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * node:http with Hono's node adapter. A stream route asks the bindings for `openStreamSink` and
 * gets a sink over this request's response; once the stream has started, the route's Response
 * only carries the status and headers (after every middleware has added its own), which this
 * writes as the head before telling the adapter the response is already sent.
 *
 * Each connection must send a complete request head within `headTimeoutMs` of its accept or of
 * its previous response (slowloris); node:http's own headersTimeout is not enforced under Deno.
 */
export function nodeListener(app: Fetchable, options: ServeOptions): Listen {
  const { host, log, metrics } = options;
  const headTimeoutMs = options.headTimeoutMs ?? HEAD_TIMEOUT_MS;
  // Client sockets alone never take the process to its open-file limit: past this many (across
  // listeners, a retired one's streams included) a new one is closed as it is accepted. EMFILE
  // is what wedges node:net's accept for good under Deno, so it must not come from clients.
  const limit = options.fileLimit ?? openFileLimit();
  const maxConnections = limit - reservedDescriptors(limit);
  let open = 0;
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

  return (port) => {
    const connections = new Map<Socket, NodeConnection>();
    const awaitHead = (socket: Socket, conn: NodeConnection) => {
      clearTimeout(conn.timer);
      conn.timer = setTimeout(() => {
        metrics?.listenerEvents.inc({ event: "head_timeout" });
        socket.destroy();
      }, headTimeoutMs);
    };
    const server = createServer(listener);
    let probe: AcceptProbe | undefined;
    server.on("connection", (socket: Socket) => {
      if (probe?.seen(socket)) return;
      if (open >= maxConnections) {
        metrics?.listenerEvents.inc({ event: "refused_at_accept" });
        socket.destroy();
        return;
      }
      open++;
      const conn: NodeConnection = { busy: false, timer: undefined };
      connections.set(socket, conn);
      awaitHead(socket, conn);
      socket.once("close", () => {
        open--;
        clearTimeout(conn.timer);
        connections.delete(socket);
      });
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const conn = connections.get(req.socket as Socket);
      if (!conn) return;
      conn.busy = true;
      clearTimeout(conn.timer);
      res.once("finish", () => {
        conn.busy = false;
        if (!req.socket.destroyed) awaitHead(req.socket as Socket, conn);
      });
    });
    let fail!: (err: unknown) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        // After listening, an error is the accept loop's (Deno's node:net says nothing of EMFILE
        // today; the supervisor's pressure check covers that silence).
        server.on("error", fail);
        const port = (server.address() as AddressInfo).port;
        // The address bound, not HOST as given (a name never matches a socket's remote address).
        probe = new AcceptProbe(port, loopbackFor((server.address() as AddressInfo).address));
        const prober = setInterval(() => {
          probe!.run().then((alive) => {
            if (!alive) fail(new Error("the accept loop stopped (node:net said nothing)"));
          });
        }, ACCEPT_PROBE_EVERY_MS);
        Deno.unrefTimer(prober as unknown as number);

        resolve({
          port,
          failed,
          retire: () =>
            new Promise<void>((done) => {
              // A retired listener's port is another's now: its probes would test that one.
              clearInterval(prober);
              server.close(() => done());
              for (const [socket, conn] of connections) if (!conn.busy) socket.destroy();
            }),
        });
      });
    });
  };
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
