/**
 * The pages and the form actions behind them (ticket, cancel, revoke). Each page reads the rows
 * and the user's current seq together and opens the HTML stream from that seq, so nothing that
 * happens between the page load and the stream opening is missed.
 */
import { eventIdAt } from "../realtime/stream_format.ts";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { AppError } from "../orders/errors.ts";
import { orderIdOf } from "../orders/ids.ts";
import { OrderRequest } from "../orders/model.ts";
import type {
  EventLog,
  OrderPage as OrdersPage,
  OrderStore,
  PushDeviceStore,
  PushSubscriptionStore,
  SessionStore,
} from "../store/store.ts";
import { OrderRow } from "../views/order_row.tsx";
import { Toast } from "../views/fragments.tsx";
import { orderSummary } from "../views/format.ts";
import type { AlertChannel } from "../views/alert_channels.tsx";
import { BlotterPage, DevicesPage, MoreRow, OrderPage, type Tab, TABS } from "../views/pages.tsx";
import type { AppEnv, RouterDeps } from "./context.ts";
import { parseWith } from "../orders/errors.ts";
import { endDeviceSession, type EndSessionDeps } from "./sessions.ts";
import type { Limits } from "./rate_limit.ts";

/** What the pages use: the user's orders and their log's ids, sessions and alert targets. */
type PageDeps =
  & RouterDeps<
    "now" | "hub",
    & Pick<
      OrderStore,
      "listOrders" | "getOrder" | "orderEvents" | "placeOrder" | "requestCancel"
    >
    & Pick<EventLog, "eventsSince" | "currentSeq">
    & Pick<SessionStore, "listSessions">
    & Pick<PushSubscriptionStore, "listPushSubscriptions">
    & Pick<PushDeviceStore, "listPushDevices">
  >
  & EndSessionDeps;

const PAGE_SIZE = 50;
const STATIC_DIR = new URL("../static/", import.meta.url);
const CONTENT_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  webmanifest: "application/manifest+json",
  svg: "image/svg+xml",
  png: "image/png",
};

/** Reads one page of a tab: Filled and Canceled & rejected are views on the closed list. */
async function tabPage(
  deps: Pick<PageDeps, "store">,
  userId: string,
  tab: Tab,
  cursor: string | null,
): Promise<OrdersPage> {
  const status = tab === "open" ? "open" : tab === "all" ? "all" : "closed";
  const page = await deps.store.listOrders(userId, { status, limit: PAGE_SIZE, cursor });
  if (tab === "filled") page.orders = page.orders.filter((o) => o.status === "filled");
  if (tab === "closed") page.orders = page.orders.filter((o) => o.status !== "filled");
  return page;
}

function tabOf(value: string | undefined): Tab {
  return (TABS.find(([k]) => k === value)?.[0] ?? "all") as Tab;
}

/** Whether the request came from htmx (it then wants fragments, not a redirect). */
function fromHtmx(c: Context): boolean {
  return c.req.header("hx-request") === "true";
}

/** The page routes. */
export function pageRoutes(
  deps: PageDeps,
  limits: Limits,
  requirePageAuth: MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const { store } = deps;
  const app = new Hono<AppEnv>();

  app.get("/static/*", async (c) => {
    const rel = c.req.path.slice("/static/".length);
    if (!/^[a-z0-9_\-/]+\.[a-z]+$/i.test(rel) || rel.includes("..")) return c.notFound();
    try {
      const body = await Deno.readFile(new URL(rel, STATIC_DIR));
      const ext = rel.split(".").pop()!;
      c.header("content-type", CONTENT_TYPES[ext] ?? "application/octet-stream");
      c.header("cache-control", rel.startsWith("vendor/") ? "public, max-age=86400" : "no-cache");
      return c.body(body);
    } catch (err) {
      // A missing file is a 404; anything else (permissions, I/O) is a real failure.
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.IsADirectory) {
        return c.notFound();
      }
      throw err;
    }
  });
  // The service worker must be served from the root to control the whole site.
  app.get("/sw.js", async (c) => {
    c.header("content-type", "text/javascript; charset=utf-8");
    c.header("cache-control", "no-cache");
    return c.body(await Deno.readFile(new URL("sw.js", STATIC_DIR)));
  });

  app.get("/", (c) => c.redirect("/orders", 303));

  app.get("/orders", requirePageAuth, async (c) => {
    const { userId } = c.get("auth");
    const tab = tabOf(c.req.query("tab"));
    // The rows and the seq they reflect, read together: the stream opens from exactly there.
    const page = await tabPage(deps, userId, tab, c.req.query("cursor") ?? null);
    const lastEventId = await eventIdAt(store, userId, page.last_seq) ?? "0";
    return c.html(String(
      <BlotterPage
        user={userId}
        orders={page.orders}
        nextCursor={page.next_cursor}
        lastEventId={lastEventId}
        tab={tab}
        status={deps.hub.realtimeStatus}
      />,
    ));
  });

  // Infinite scroll and polling: rows only.
  app.get("/orders/rows", requirePageAuth, async (c) => {
    const { userId } = c.get("auth");
    const tab = tabOf(c.req.query("tab"));
    const page = await tabPage(deps, userId, tab, c.req.query("cursor") ?? null);
    const oob = c.req.query("oob") === "1";
    return c.html(
      page.orders.map((o) => String(<OrderRow order={o} oob={oob} />)).join("") +
        (page.next_cursor && !oob ? String(<MoreRow tab={tab} cursor={page.next_cursor} />) : ""),
    );
  });

  app.get("/orders/:id", requirePageAuth, async (c) => {
    const id = orderIdOf(c.req.param("id"));
    const { userId } = c.get("auth");
    const lastEventId = await eventIdAt(store, userId, await store.currentSeq(userId)) ?? "0";
    const order = await store.getOrder(userId, id);
    if (!order) throw new AppError("not_found", `No order ${id}`);
    const events = await store.orderEvents(userId, order.id);
    return c.html(String(
      <OrderPage
        user={userId}
        order={order}
        events={events}
        lastEventId={lastEventId}
        status={deps.hub.realtimeStatus}
      />,
    ));
  });

  // The ticket. htmx gets fragments (a toast, or the error in the form); a plain form post
  // gets a redirect back to the blotter. The row itself arrives on the stream.
  app.post("/orders", requirePageAuth, async (c) => {
    const { userId } = c.get("auth");
    limits.orderActions.take(userId);
    const form = await c.req.parseBody();
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(form)) {
      if (typeof v === "string" && v.trim() !== "") fields[k] = v.trim();
    }
    let request;
    try {
      request = parseWith(OrderRequest, fields);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      if (!fromHtmx(c)) throw err;
      return c.html(
        String(
          <p id="ticket-error" class="error" role="alert" hx-swap-oob="true">{err.message}</p>,
        ),
      );
    }
    const placed = await store.placeOrder(userId, request, deps.now());
    if (!fromHtmx(c)) return c.redirect("/orders", 303);
    c.header("HX-Trigger", "order-placed");
    return c.html(
      String(<p id="ticket-error" class="error" role="alert" hx-swap-oob="true"></p>) +
        String(
          <div hx-swap-oob="beforeend:#toasts">
            <div class="toast toast-placed" role="status">
              <a href={`/orders/${placed.order.id}`}>Placed: {orderSummary(placed.order)}</a>
            </div>
          </div>,
        ),
    );
  });

  app.post("/orders/:id/cancel", requirePageAuth, async (c) => {
    const id = orderIdOf(c.req.param("id"));
    const { userId } = c.get("auth");
    limits.orderActions.take(userId);
    try {
      await store.requestCancel(userId, id, deps.now());
    } catch (err) {
      if (!(err instanceof AppError) || !fromHtmx(c) || err.status >= 500) throw err;
      const order = await store.getOrder(userId, id);
      return c.html(
        order
          ? String(
            <div hx-swap-oob="beforeend:#toasts">
              <Toast
                event={{
                  // A toast for the refusal, not an event of the log: no seq, no id of its own.
                  id: "0",
                  seq: 0,
                  type: "order_cancel_rejected",
                  at: deps.now().toISOString(),
                  order,
                  reason: err.message,
                }}
              />
            </div>,
          )
          : "",
      );
    }
    return fromHtmx(c) ? c.html("") : c.redirect("/orders", 303);
  });

  app.get("/devices", requirePageAuth, async (c) => {
    const { userId, sessionId } = c.get("auth");
    const [sessions, subs, devices] = await Promise.all([
      store.listSessions(userId),
      store.listPushSubscriptions(userId),
      store.listPushDevices(userId),
    ]);
    // Which background alerts reach each session: browsers by Web Push, apps by FCM or APNs.
    const alerts: Record<string, AlertChannel[]> = {};
    const add = (session: string, kind: AlertChannel) => {
      const kinds = alerts[session] ??= [];
      if (!kinds.includes(kind)) kinds.push(kind);
    };
    for (const s of subs) add(s.session_id, "browser");
    for (const d of devices) add(d.session_id, d.platform === "fcm" ? "android" : "ios");
    return c.html(
      String(
        <DevicesPage user={userId} sessions={sessions} current={sessionId} alerts={alerts} />,
      ),
    );
  });

  app.post("/devices/revoke-others", requirePageAuth, async (c) => {
    const { userId, sessionId } = c.get("auth");
    for (const s of await store.listSessions(userId)) {
      if (s.id === sessionId) continue;
      await endDeviceSession(deps, userId, s.id);
    }
    return c.redirect("/devices", 303);
  });

  app.post("/devices/:id/revoke", requirePageAuth, async (c) => {
    const { userId } = c.get("auth");
    await endDeviceSession(deps, userId, c.req.param("id"));
    return c.redirect("/devices", 303);
  });

  return app;
}
