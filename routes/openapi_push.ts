/**
 * The push part of the OpenAPI document (routes/openapi.ts): Web Push subscriptions and native
 * app tokens (FCM, APNs). The device token's schema comes from the zod schema the route
 * validates with, so the two cannot drift.
 */
import { z } from "zod";
import { PushDeviceBody, PushDeviceDeleteBody } from "./push.ts";

type Schema = Record<string, unknown>;

const json = (schema: Schema, example?: unknown) => ({
  "application/json": { schema, ...(example === undefined ? {} : { example }) },
});
const errorResponse = (description: string) => ({
  description,
  content: json({ $ref: "#/components/schemas/Error" }),
});
const toSchema = (schema: z.ZodType): Schema => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: "input" }) as Schema;
  return rest;
};

/** Examples shown in the document; a test checks each against the schema it illustrates. */
export const PUSH_EXAMPLES = {
  PushDevice: {
    platform: "apns",
    token: "a9f1c0d2e3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8",
  },
};

/** The push paths. */
export function pushPaths(): Record<string, Schema> {
  return {
    "/api/v1/push/vapid-public-key": {
      get: {
        summary: "The VAPID public key for PushManager.subscribe",
        security: [],
        responses: {
          "200": {
            description: "base64url P-256 point",
            content: json({ type: "object", properties: { key: { type: "string" } } }),
          },
        },
      },
    },
    "/api/v1/push/subscriptions": {
      post: {
        summary: "Register this device's browser PushSubscription",
        requestBody: {
          content: json({
            type: "object",
            required: ["endpoint", "keys"],
            properties: {
              endpoint: { type: "string", format: "uri" },
              expirationTime: { type: ["number", "null"] },
              keys: {
                type: "object",
                properties: { p256dh: { type: "string" }, auth: { type: "string" } },
              },
            },
          }),
        },
        responses: {
          "201": { description: "Stored" },
          "400": errorResponse("Endpoint not allowed"),
        },
      },
      delete: {
        summary: "Remove a push subscription",
        requestBody: {
          content: json({ type: "object", properties: { endpoint: { type: "string" } } }),
        },
        responses: { "204": { description: "Removed" } },
      },
    },
    "/api/v1/push/devices": {
      post: {
        summary: "Register this device session's FCM or APNs token for background alerts",
        description: "Alerts go to the token while this device session has no open stream: " +
          "fills, partial fills, rejections, cancels, expiries. The token belongs to the " +
          "session: signing it out deletes the token. A token registered by another session " +
          "or user moves to this one.",
        requestBody: { content: json(toSchema(PushDeviceBody), PUSH_EXAMPLES.PushDevice) },
        responses: {
          "201": { description: "Registered (new here, or moved from another session)" },
          "200": { description: "This device session had registered this token already" },
          "400": errorResponse("Invalid token, or that platform is not configured"),
        },
      },
      delete: {
        summary: "Stop alerts to a token of yours",
        requestBody: { content: json(toSchema(PushDeviceDeleteBody)) },
        responses: {
          "204": { description: "Removed (or was not there)" },
          "400": errorResponse("Invalid token"),
        },
      },
    },
  };
}
