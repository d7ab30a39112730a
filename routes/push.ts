/**
 * Web Push subscriptions: the VAPID public key (no credentials needed), subscribe and unsubscribe.
 * Endpoints must be on an allowed push service, so a subscription cannot make the server call
 * arbitrary URLs.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { AppError } from "../orders/errors.ts";
import { endpointAllowed } from "../realtime/push.ts";
import type { AppEnv, Deps } from "./context.ts";
import { readJson } from "./middleware.ts";

const Base64Url = z.string().min(1).max(512).regex(/^[A-Za-z0-9_-]+=*$/, "must be base64url");

/** A browser's PushSubscription.toJSON(). */
export const PushSubscriptionBody = z.object({
  endpoint: z.url({ error: "endpoint must be a URL" }).max(2048),
  expirationTime: z.number().nullable().optional(),
  keys: z.object({ p256dh: Base64Url, auth: Base64Url }),
});

/** The push routes. */
export function pushRoutes(deps: Deps, requireApiAuth: MiddlewareHandler<AppEnv>): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/api/v1/push/vapid-public-key", (c) => c.json({ key: deps.push.publicKey }));

  app.post("/api/v1/push/subscriptions", requireApiAuth, async (c) => {
    const sub = await readJson(c, PushSubscriptionBody);
    if (!endpointAllowed(sub.endpoint, deps.config.pushEndpointAllow)) {
      throw new AppError("invalid_request", "endpoint is not on an allowed push service");
    }
    const { userId, sessionId } = c.get("auth");
    await deps.store.addPushSubscription({
      endpoint: sub.endpoint,
      keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth },
      user_id: userId,
      session_id: sessionId,
      created_at: deps.now().toISOString(),
    });
    return c.json({ endpoint: sub.endpoint }, 201);
  });

  app.delete("/api/v1/push/subscriptions", requireApiAuth, async (c) => {
    const { endpoint } = await readJson(c, z.object({ endpoint: z.string().max(2048) }));
    await deps.store.removePushSubscription(c.get("auth").userId, endpoint);
    return c.body(null, 204);
  });
  return app;
}
