/**
 * The JSON API under /api/v1: sessions (dev mode), orders, and the execution ingest. Thin: parse
 * with zod, authorize, call the store, answer. Order ids are checked for shape first (400), then
 * for ownership (404, never revealing that someone else's order exists).
 */
import { eventIdAt } from "../realtime/stream_format.ts";
import { type Context, Hono } from "hono";
import { getConnInfo } from "hono/deno";
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { bearerToken } from "../auth/middleware.ts";
import { deviceLabel, startSession } from "../auth/sessions.ts";
import { AppError, errorBody, parseWith } from "../orders/errors.ts";
import { orderIdOf } from "../orders/ids.ts";
import { OrderRequest, ReplaceRequest } from "../orders/model.ts";
import { ingest } from "../venue/ingest.ts";
import type { EventLog, OrderStore, SessionStore } from "../store/store.ts";
import type { AppEnv, AuthInfo, RouterDeps } from "./context.ts";
import type { EndSessionDeps } from "./sessions.ts";

/** What the JSON API uses: the orders, the user's sessions, the log's ids; the ingest's clock. */
type ApiDeps =
  & RouterDeps<
    "config" | "log" | "metrics" | "now" | "hub",
    & Pick<
      OrderStore,
      | "placeOrder"
      | "getOrder"
      | "listOrders"
      | "orderEvents"
      | "requestCancel"
      | "requestReplace"
      | "applyReport"
    >
    & Pick<SessionStore, "createSession" | "listSessions">
    & Pick<EventLog, "eventsSince">
  >
  & EndSessionDeps;
import { readJson } from "./middleware.ts";
import { endDeviceSession } from "./sessions.ts";
import type { Limits } from "./rate_limit.ts";

/**
 * A username for dev-mode login ("any username", CONTRACT): becomes the user id. Only what cannot
 * be a name is refused: nothing at all, over 64 characters, or control characters.
 */
export const Username = z.string({ error: "username is required" }).trim()
  .min(1, "username is required").max(64, "username: at most 64 characters")
  .regex(/^[^\p{Cc}]+$/u, "username: no control characters");

// Unknown query parameters are ignored (a cache-buster or a tracing tag must not break a list).
const ListQuery = z.object({
  status: z.enum(["open", "closed", "all"], { error: "status must be open, closed or all" })
    .default("all"),
  limit: z.string().regex(/^\d{1,3}$/, "limit must be 1..200").transform(Number)
    .pipe(z.number().int().min(1, "limit must be 1..200").max(200, "limit must be 1..200"))
    .default(50),
  cursor: z.string().max(200).optional(),
});

/** Reports accepted in one ingest call. */
const MAX_BATCH = 1_000;

/** The client address for per-address limits (the socket's; proxies are not trusted). */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // No socket behind the request (`app.request()` in tests): one shared bucket is right.
    return "unknown";
  }
}

function orderIdParam(c: Context): string {
  return orderIdOf(c.req.param("id") ?? "");
}

/** The JSON API routes. `requireApiAuth` is the auth middleware answering 401 in JSON. */
export function apiRoutes(
  deps: ApiDeps,
  limits: Limits,
  requireApiAuth: import("hono").MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const { store } = deps;
  const app = new Hono<AppEnv>();
  const auth = (c: Context<AppEnv>): AuthInfo => c.get("auth");

  // --- sessions ---------------------------------------------------------------------------------
  app.post("/api/v1/sessions", async (c) => {
    if (deps.config.auth.mode !== "dev") {
      throw new AppError("not_found", "Sessions come from the auth service in jwt mode");
    }
    limits.logins.take(clientAddress(c));
    const { username } = await readJson(c, z.strictObject({ username: Username }));
    const { token, session } = await startSession(
      store,
      username,
      deviceLabel(c.req.header("user-agent")),
      deps.now(),
    );
    deps.log.info("session started", { user_id: session.user_id, session_id: session.id });
    return c.json({ token, session_id: session.id, user_id: session.user_id }, 201);
  });

  app.get("/api/v1/sessions", requireApiAuth, async (c) => {
    const sessions = await store.listSessions(auth(c).userId);
    return c.json({
      sessions: sessions.map((s) => ({ ...s, current: s.id === auth(c).sessionId })),
    });
  });

  // The auth service (AUTH_SERVICE_TOKEN) may end any device session, e.g. on a password change.
  app.delete(
    "/api/v1/sessions/:id",
    async (c, next) => {
      const service = deps.config.auth.serviceToken;
      const presented = bearerToken(c.req.header("authorization"));
      if (!service || presented === null || !sameSecret(presented, service)) return await next();
      const id = c.req.param("id");
      if (!(await endDeviceSession(deps, null, id))) {
        throw new AppError("not_found", `No session ${id}`);
      }
      return c.body(null, 204);
    },
    requireApiAuth,
    async (c) => {
      const id = c.req.param("id");
      if (!(await endDeviceSession(deps, auth(c).userId, id))) {
        throw new AppError("not_found", `No session ${id}`);
      }
      return c.body(null, 204);
    },
  );

  // --- orders -----------------------------------------------------------------------------------
  app.post("/api/v1/orders", requireApiAuth, async (c) => {
    const { userId } = auth(c);
    limits.orderActions.take(userId);
    const request = await readJson(c, OrderRequest);
    const placed = await store.placeOrder(userId, request, deps.now());
    return c.json(placed.order, placed.created ? 201 : 200);
  });

  app.get("/api/v1/orders", requireApiAuth, async (c) => {
    const q = parseWith(ListQuery, c.req.query());
    const userId = auth(c).userId;
    const page = await store.listOrders(userId, q);
    return c.json({
      orders: page.orders,
      next_cursor: page.next_cursor,
      // Read with the rows: an app opens its stream from here and misses nothing (CONTRACT).
      last_event_id: await eventIdAt(store, userId, page.last_seq),
    });
  });

  app.get("/api/v1/orders/:id", requireApiAuth, async (c) => {
    const id = orderIdParam(c);
    const order = await store.getOrder(auth(c).userId, id);
    if (!order) throw new AppError("not_found", `No order ${id}`);
    return c.json(order);
  });

  app.get("/api/v1/orders/:id/events", requireApiAuth, async (c) => {
    const id = orderIdParam(c);
    const { userId } = auth(c);
    if (!(await store.getOrder(userId, id))) throw new AppError("not_found", `No order ${id}`);
    return c.json({ events: await store.orderEvents(userId, id) });
  });

  app.post("/api/v1/orders/:id/cancel", requireApiAuth, async (c) => {
    const id = orderIdParam(c);
    const { userId } = auth(c);
    limits.orderActions.take(userId);
    const result = await store.requestCancel(userId, id, deps.now());
    return c.json(result.order, 202);
  });

  app.patch("/api/v1/orders/:id", requireApiAuth, async (c) => {
    const id = orderIdParam(c);
    const { userId } = auth(c);
    limits.orderActions.take(userId);
    const changes = await readJson(c, ReplaceRequest);
    const result = await store.requestReplace(userId, id, changes, deps.now());
    return c.json(result.order, 202);
  });

  // --- execution ingest -------------------------------------------------------------------------
  app.post("/api/v1/executions", async (c) => {
    const expected = deps.config.ingestToken;
    if (!expected) {
      // Answered here, not thrown: the error handler gives every 503 a Retry-After, but this one
      // lasts until the server is configured again, so a venue must not be told to come back.
      const disabled = new AppError(
        "unavailable",
        "Execution ingest is disabled (INGEST_TOKEN is not set)",
      );
      return c.json(errorBody(disabled), 503);
    }
    const presented = bearerToken(c.req.header("authorization"));
    if (presented === null || !sameSecret(presented, expected)) {
      throw new AppError("unauthenticated", "Present the ingest token as a bearer token");
    }
    const body = await readJson(c, AnyJson);
    const batch = Array.isArray(body);
    const items = batch ? body : [body];
    if (items.length === 0 || items.length > MAX_BATCH) {
      throw new AppError("invalid_request", `Send 1 to ${MAX_BATCH} reports`);
    }
    limits.ingest.take("ingest", items.length);
    const results = await ingest({
      store,
      now: deps.now,
      answered: (status) => deps.metrics.ingestResults.inc({ status: String(status) }),
    }, items);
    // Refused for now (overload, the store busy or away): the venue sends those again with the
    // same exec_id, after the longest wait any of them asked for.
    const retry = Math.max(0, ...results.map((r) => r.retryAfterS ?? 0));
    if (retry > 0) c.header("Retry-After", String(retry));
    if (!batch) return c.json(results[0].body, results[0].status as 201);
    return c.json({ results: results.map((r) => ({ status: r.status, ...r.body })) }, 200);
  });

  return app;
}

/** Any JSON value: the ingest body is one report or an array of them, each validated alone. */
const AnyJson = z.unknown();

/** Compares secrets in constant time. */
function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given), b = new TextEncoder().encode(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
