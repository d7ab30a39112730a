/**
 * Push targets: Web Push subscriptions (the VAPID public key needs no credentials; endpoints must
 * be on an allowed push service, so a subscription cannot make the server call arbitrary URLs)
 * and native app tokens (FCM, APNs), each tied to the device session that registered it.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { AppError } from "../orders/errors.ts";
import { endpointAllowed } from "../realtime/push/web_push.ts";
import type { PushDeviceStore, PushSubscriptionStore } from "../store/store.ts";
import type { AppEnv, RouterDeps } from "./context.ts";

/** What the push routes use: the dispatcher's keys and the store's alert targets. */
type PushDeps = RouterDeps<
  "config" | "now" | "push",
  & Pick<PushSubscriptionStore, "addPushSubscription" | "removePushSubscription">
  & Pick<PushDeviceStore, "addPushDevice" | "removePushDevice">
>;
import { readJson } from "./middleware.ts";

const Base64Url = z.string().min(1).max(512).regex(/^[A-Za-z0-9_-]+=*$/, "must be base64url");

/** A browser's PushSubscription.toJSON(). */
export const PushSubscriptionBody = z.object({
  endpoint: z.url({ error: "endpoint must be a URL" }).max(2048),
  expirationTime: z.number().nullable().optional(),
  keys: z.object({ p256dh: Base64Url, auth: Base64Url }),
});

/** A native app's device token (CONTRACT: at most 4,096 characters of [A-Za-z0-9_:.-]). */
export const DeviceToken = z.string({ error: "token must be a string" })
  .min(1, "token must not be empty")
  .max(4096, "token must be at most 4096 characters")
  .regex(/^[A-Za-z0-9_:.\-]+$/, "token may hold only letters, digits and _ : . -");

/** `POST /api/v1/push/devices`. */
export const PushDeviceBody = z.object({
  platform: z.enum(["fcm", "apns"], { error: 'platform must be "fcm" or "apns"' }),
  token: DeviceToken,
});

/** `DELETE /api/v1/push/devices`. */
export const PushDeviceDeleteBody = z.object({ token: DeviceToken });

/** The push routes. */
export function pushRoutes(
  deps: PushDeps,
  requireApiAuth: MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
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

  app.post("/api/v1/push/devices", requireApiAuth, async (c) => {
    const { platform, token } = await readJson(c, PushDeviceBody);
    if (!deps.push.native[platform]) {
      throw new AppError(
        "invalid_request",
        `${platform === "fcm" ? "FCM" : "APNs"} is not configured on this server`,
      );
    }
    const { userId, sessionId } = c.get("auth");
    const result = await deps.store.addPushDevice({
      token,
      platform,
      user_id: userId,
      session_id: sessionId,
      created_at: deps.now().toISOString(),
    });
    // The token is the caller's own; answering it back tells them nothing new.
    return c.json({ platform, session_id: sessionId }, result === "unchanged" ? 200 : 201);
  });

  app.delete("/api/v1/push/devices", requireApiAuth, async (c) => {
    const { token } = await readJson(c, PushDeviceDeleteBody);
    await deps.store.removePushDevice(c.get("auth").userId, token);
    return c.body(null, 204);
  });
  return app;
}
