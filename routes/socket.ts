/**
 * The app socket, `GET /api/v1/ws` (CONTRACT): the JSON stream's events over one WebSocket, for
 * the mobile apps (React Native has WebSocket but no EventSource) and any other client. This is
 * its handshake: the upgrade (a cookie counts only from this site's own Origin: no cross-site
 * WebSocket hijacking), the client's `hello` within 10 s with its credentials and resume point,
 * and `auth` refreshes on the open socket. What follows the handshake is realtime/app_socket.ts.
 *
 * Served by Deno.serve (`Deno.upgradeWebSocket`); under `HTTP_SERVER=node` the upgrade is
 * refused with 501, and clients fall back to the stream (the client library does by itself).
 */
import { getCookie } from "hono/cookie";
import { Hono } from "hono";
import { cookieName, sameOrigin, type TokenAuthenticator } from "../auth/middleware.ts";
import { AppError } from "../orders/errors.ts";
import { parseResumePoint, type ResumePoint } from "../orders/event_id.ts";
import { AppSocket } from "../realtime/app_socket.ts";
import type { ResumeLog } from "../realtime/resume.ts";
import type { AppEnv, AuthInfo, RouterDeps } from "./context.ts";

/** What the socket uses: the hub, the store's log, the settings, and the credential check. */
type SocketDeps = RouterDeps<"config" | "hub" | "metrics" | "log", ResumeLog>;

/** The client must say `hello` within this long after the upgrade. */
const HELLO_WITHIN_MS = 10_000;
/** A message longer than this (in bytes) closes the socket with 4400. */
export const MAX_MESSAGE_BYTES = 16_384;

/** Close codes of the handshake (the rest are realtime/app_socket.ts's). */
const BAD_MESSAGE = 4400;
const BAD_CREDENTIALS = 4401;
const TOO_MANY = 4429;
/** The instance holds MAX_STREAMS: try again later (RFC 6455's 1013). */
const TRY_AGAIN_LATER = 1013;
/** The server is shutting down (CONTRACT): reconnect with backoff. */
const RESTARTING = 1012;

/** The app socket route. `authenticate` checks a bearer token or a session cookie's value. */
export function socketRoutes(deps: SocketDeps, authenticate: TokenAuthenticator): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/api/v1/ws", (c) => {
    const cookie = getCookie(c, cookieName(deps)) ?? null;
    // A browser sends its cookies with any site's WebSocket: only this site's pages may use them.
    if (cookie && !sameOrigin(c, deps.config.publicOrigin)) {
      throw new AppError("forbidden", "A cookie authenticates a socket only from this site");
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new AppError("invalid_request", "This is a WebSocket endpoint: send an upgrade");
    }
    if (deps.config.httpServer !== "deno") {
      return c.json({
        error: {
          code: "not_implemented",
          message: "The app socket is served with HTTP_SERVER=deno; use GET /api/v1/stream",
        },
      }, 501);
    }
    // Read before the upgrade: after it, the request is closed (even its headers).
    const userAgent = c.req.header("user-agent");
    // Deno pings a socket that has been silent for half its idleTimeout (30 s by default) and
    // closes it when no pong comes: the one way a phone gone without a FIN is noticed before TCP
    // gives up (~15 min), while it holds one of its user's MAX_STREAMS_PER_USER places. It is
    // about half of an idle socket's CPU and ~1.5 KB of its memory (bench/README.md, "20,000
    // connections on one instance"), and kept for that.
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    handshake(deps, authenticate, socket, cookie, userAgent);
    return response;
  });
  return app;
}

/** Waits for `hello`, authenticates, then hands the socket to an AppSocket; handles `auth`. */
function handshake(
  deps: SocketDeps,
  authenticate: TokenAuthenticator,
  socket: WebSocket,
  /** The session cookie of this site's page, checked when hello comes (it may be revoked by then). */
  cookie: string | null,
  userAgent: string | undefined,
): void {
  let live: AppSocket | null = null;
  let auth: AuthInfo | null = null;
  let helloSeen = false;
  // Dropped once hello came: this scope lives as long as the socket (for `auth`), and a cleared
  // timer it still named, with its listener, would stay with every idle connection.
  let helloTimer: ReturnType<typeof setTimeout> | undefined = setTimeout(
    () => close(BAD_MESSAGE, "no hello within 10 s"),
    HELLO_WITHIN_MS,
  );
  const stopHelloTimer = () => {
    clearTimeout(helloTimer);
    helloTimer = undefined;
    socket.removeEventListener("close", stopHelloTimer);
  };
  const close = (code: number, reason: string) => {
    stopHelloTimer();
    closeSocket(socket, code, reason);
  };
  socket.addEventListener("close", stopHelloTimer);

  const onHello = async (message: Message) => {
    helloSeen = true;
    stopHelloTimer();
    let resumeFrom: ResumePoint | null = null;
    if (message.last_event_id !== undefined && message.last_event_id !== null) {
      const point = typeof message.last_event_id === "string"
        ? parseResumePoint(message.last_event_id)
        : "malformed";
      if (point === "malformed") return close(BAD_MESSAGE, "malformed last_event_id");
      resumeFrom = point;
    }
    // A token in hello authenticates even when a cookie came too; without one (absent or null),
    // the cookie does, checked now.
    auth = typeof message.token === "string"
      ? await authenticate(message.token, "bearer", userAgent)
      : message.token === undefined || message.token === null
      ? (cookie ? await authenticate(cookie, "cookie", userAgent) : null)
      : null;
    if (!auth) return close(BAD_CREDENTIALS, "no or bad credentials");
    if (socket.readyState !== WebSocket.OPEN) return;
    live = new AppSocket({
      userId: auth.userId,
      sessionId: auth.sessionId,
      store: deps.store,
      hub: deps.hub,
      resumeFrom,
      queueLimit: deps.config.streamQueueLimit,
      expiresAt: auth.expiresAt,
      socket,
      heartbeatMs: deps.config.heartbeatMs,
      metrics: deps.metrics,
      log: deps.log,
    });
    try {
      await live.open();
    } catch (err) {
      live = null;
      if (err instanceof AppError && err.code === "too_many_streams") {
        return close(TOO_MANY, "too many open streams and sockets for this user");
      }
      if (err instanceof AppError && err.code === "unavailable") {
        return deps.hub.closing
          ? close(RESTARTING, "the server is restarting")
          : close(TRY_AGAIN_LATER, "this server holds as many connections as it can");
      }
      throw err;
    }
  };

  const onAuth = async (message: Message) => {
    if (typeof message.token !== "string") return close(BAD_MESSAGE, "auth needs a token");
    const renewed = await authenticate(message.token, "bearer", userAgent);
    // Only the same user's same device session: a socket never changes whose events it carries.
    if (!renewed || renewed.userId !== auth?.userId || renewed.sessionId !== auth.sessionId) {
      live?.close("credentials expired");
      return close(BAD_CREDENTIALS, "no or bad credentials");
    }
    auth = renewed;
    live?.refreshed(renewed.expiresAt);
  };

  socket.addEventListener("message", (e) => {
    const message = parse(e.data);
    if (!message) return close(BAD_MESSAGE, "a message must be a JSON object of at most 16 KB");
    const handled = message.op === "hello" && !helloSeen
      ? onHello(message)
      : message.op === "auth" && live
      ? onAuth(message)
      : null;
    // The reason is fixed text: a close reason holds at most 123 bytes, and the op is the client's.
    if (!handled) return close(BAD_MESSAGE, "unexpected op");
    handled.catch((err) => {
      deps.log.error("app socket handshake failed", { err: String(err) });
      close(1011, "server error");
    });
  });
}

/**
 * Closes a socket that may already be closing, with a reason cut to the 123 bytes a close frame
 * holds (`WebSocket.close` throws past that, and a throw in a socket's listener ends the process).
 */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  if (socket.readyState !== WebSocket.OPEN && socket.readyState !== WebSocket.CONNECTING) return;
  let cut = reason;
  while (new TextEncoder().encode(cut).length > 123) cut = cut.slice(0, -1);
  try {
    socket.close(code, cut);
  } catch {
    // Closed meanwhile: nothing left to tell it.
  }
}

/** A client message: one JSON object with `op`. */
interface Message {
  op?: unknown;
  token?: unknown;
  last_event_id?: unknown;
}

/** The message, or null when it is too long, binary, not JSON or not an object. */
function parse(data: unknown): Message | null {
  if (typeof data !== "string") return null;
  // UTF-8 bytes: at most 3 per UTF-16 unit, so only a long text needs counting.
  if (data.length * 3 > MAX_MESSAGE_BYTES) {
    if (new TextEncoder().encode(data).length > MAX_MESSAGE_BYTES) return null;
  }
  try {
    const value = JSON.parse(data);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}
