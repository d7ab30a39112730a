/**
 * `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the JSON API and the stream, generated
 * from the same zod schemas the routes validate with, so it cannot drift from them. Native apps
 * (iOS, Android, desktop) code against it.
 */
import { Hono } from "hono";
import { z } from "zod";
import {
  ExecutionReport,
  OrderEventSchema,
  OrderRequest,
  OrderSchema,
  ReplaceRequest,
} from "../orders/model.ts";
import type { AppEnv } from "./context.ts";
import { pushPaths } from "./openapi_push.ts";
import { socketPaths } from "./openapi_socket.ts";

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema, example?: unknown) => ({
  "application/json": { schema, ...(example === undefined ? {} : { example }) },
});
const errorResponse = (description: string) => ({
  description,
  content: json(ref("Error")),
});
const ORDER_ID = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", format: "uuid" },
} as const;

/** Examples shown in the document; a test checks each against the schema it illustrates. */
export const EXAMPLES = {
  OrderRequest: {
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    type: "limit",
    qty: "10",
    limit_price: "187.25",
    time_in_force: "day",
    client_order_id: "my-order-0001",
  },
  ReplaceRequest: { qty: "5", limit_price: "186.90" },
  ExecutionReport: {
    order_id: "0190b4a0-7c1e-7000-8000-0000000000a1",
    exec_id: "venue-42-1",
    type: "partial_fill",
    at: "2026-11-24T14:30:00.123Z",
    last_qty: "3",
    last_price: "187.32",
  },
  Order: {
    id: "0190b4a0-7c1e-7000-8000-0000000000a1",
    client_order_id: "my-order-0001",
    symbol: "AAPL",
    asset_class: "stock",
    side: "buy",
    type: "limit",
    time_in_force: "day",
    qty: "10",
    notional: null,
    limit_price: "187.25",
    stop_price: null,
    status: "partially_filled",
    filled_qty: "3",
    filled_avg_price: "187.32",
    filled_notional: "561.96",
    reject_reason: null,
    created_at: "2026-11-24T14:29:59.870Z",
    updated_at: "2026-11-24T14:30:00.131Z",
    filled_at: null,
    canceled_at: null,
    replaces: null,
    replaced_by: null,
  },
} as const;

/** The zod schema behind each documented example (the test walks this map). */
export const EXAMPLE_SCHEMAS: Record<keyof typeof EXAMPLES, z.ZodType> = {
  OrderRequest,
  ReplaceRequest,
  ExecutionReport,
  Order: OrderSchema,
};

function toSchema(schema: z.ZodType, io: "input" | "output"): Schema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Schema;
  return rest;
}

/** Builds the OpenAPI document (pure; cached by the route). */
export function openApiDocument(): Schema {
  const orderEvent = OrderEventSchema;
  return {
    openapi: "3.1.0",
    info: {
      title: "Blotter API",
      version: "1",
      description: "Real-time order status. Decimals are strings; times are RFC 3339 UTC. " +
        "Authenticate with `Authorization: Bearer TOKEN` (dev mode: POST /api/v1/sessions).",
    },
    servers: [{ url: "/" }],
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer" },
        ingest: { type: "http", scheme: "bearer", description: "INGEST_TOKEN" },
      },
      schemas: {
        OrderRequest: { ...toSchema(OrderRequest, "input"), example: EXAMPLES.OrderRequest },
        ReplaceRequest: { ...toSchema(ReplaceRequest, "input"), example: EXAMPLES.ReplaceRequest },
        ExecutionReport: {
          ...toSchema(ExecutionReport, "input"),
          example: EXAMPLES.ExecutionReport,
        },
        Order: { ...toSchema(OrderSchema, "output"), example: EXAMPLES.Order },
        OrderEvent: toSchema(orderEvent, "output"),
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: { type: "string" },
                message: { type: "string" },
                details: {},
              },
            },
          },
        },
      },
    },
    security: [{ bearer: [] }],
    paths: paths(),
  };
}

function paths(): Schema {
  const order = { description: "The order", content: json(ref("Order")) };
  return {
    "/api/v1/sessions": {
      post: {
        summary: "Sign in (dev mode) and get a bearer token for this device",
        security: [],
        requestBody: {
          content: json({
            type: "object",
            required: ["username"],
            properties: { username: { type: "string" } },
          }),
        },
        responses: {
          "201": {
            description: "A new device session",
            content: json({
              type: "object",
              properties: {
                token: { type: "string" },
                session_id: { type: "string" },
                user_id: { type: "string" },
              },
            }),
          },
          "400": errorResponse("Invalid username"),
        },
      },
      get: {
        summary: "This user's signed-in devices (sessions that are not revoked)",
        responses: {
          "200": {
            description: "Sessions, newest first; `current` marks the calling device",
            content: json({
              type: "object",
              properties: { sessions: { type: "array", items: { type: "object" } } },
            }),
          },
          "401": errorResponse("Not signed in"),
        },
      },
    },
    "/api/v1/sessions/{id}": {
      delete: {
        summary: "Revoke a device session; its open streams close within 1 s",
        parameters: [{ ...ORDER_ID, schema: { type: "string" } }],
        responses: { "204": { description: "Revoked" }, "404": errorResponse("No such session") },
      },
    },
    "/api/v1/orders": {
      post: {
        summary: "Place an order (idempotent on client_order_id)",
        requestBody: { content: json(ref("OrderRequest")) },
        responses: {
          "201": order,
          "200": {
            description: "Same client_order_id: the existing order",
            content: json(ref("Order")),
          },
          "400": errorResponse("Invalid order"),
          "415": errorResponse("Not JSON"),
          "429": errorResponse("Too many order actions"),
        },
      },
      get: {
        summary: "List orders, newest first",
        parameters: [
          { name: "status", in: "query", schema: { enum: ["open", "closed", "all"] } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 200 } },
          { name: "cursor", in: "query", schema: { type: "string" } },
        ],
        responses: {
          "200": {
            description: "One page, and the newest event id read together with its rows: every " +
              "event up to it is in them, none after. Open the stream from the first page's.",
            content: json({
              type: "object",
              required: ["orders", "next_cursor", "last_event_id"],
              properties: {
                orders: { type: "array", items: ref("Order") },
                next_cursor: { type: ["string", "null"] },
                last_event_id: { type: ["string", "null"] },
              },
            }),
          },
        },
      },
    },
    "/api/v1/orders/{id}": {
      get: {
        summary: "One order",
        parameters: [ORDER_ID],
        responses: {
          "200": order,
          "400": errorResponse("Malformed id"),
          "404": errorResponse("Not yours or unknown"),
        },
      },
      patch: {
        summary: "Replace quantity and/or limit price",
        parameters: [ORDER_ID],
        requestBody: { content: json(ref("ReplaceRequest")) },
        responses: {
          "202": order,
          "409": errorResponse("Final, or a cancel or replace is pending"),
          "404": errorResponse("Not found"),
        },
      },
    },
    "/api/v1/orders/{id}/events": {
      get: {
        summary: "An order's events, oldest first",
        parameters: [ORDER_ID],
        responses: {
          "200": {
            description: "Events",
            content: json({
              type: "object",
              properties: { events: { type: "array", items: ref("OrderEvent") } },
            }),
          },
          "404": errorResponse("Not found"),
        },
      },
    },
    "/api/v1/orders/{id}/cancel": {
      post: {
        summary: "Ask to cancel",
        parameters: [ORDER_ID],
        responses: {
          "202": order,
          "409": errorResponse("Already final, or a replace is pending"),
          "404": errorResponse("Not found"),
        },
      },
    },
    "/api/v1/stream": {
      get: {
        summary: "Server-Sent Events of this user's OrderEvents",
        description:
          "Each message: `id: SEQ.TAG` (the event's id), `event: order`, `data: OrderEvent`. " +
          "Resume with the `Last-Event-ID` header (or `?last_event_id=`): every event with a " +
          "larger seq, in order, then live; from a full id only onto the same history (the " +
          "store's event SEQ has that TAG), a bare SEQ by seq alone. `event: reset` (its id: the " +
          "newest event's) when the position is too old, ahead, or of another history: reload " +
          "the list. " +
          "`event: status` `{realtime: ok|degraded}`: poll GET /api/v1/orders while degraded. " +
          "`: ping` comments every HEARTBEAT_MS.",
        parameters: [
          {
            name: "Last-Event-ID",
            in: "header",
            schema: { type: "string", pattern: "^[0-9]+(\\.[A-Za-z0-9_-]{6,16})?$" },
          },
          {
            name: "last_event_id",
            in: "query",
            schema: { type: "string", pattern: "^[0-9]+(\\.[A-Za-z0-9_-]{6,16})?$" },
          },
        ],
        responses: {
          "200": {
            description: "text/event-stream; each `data:` is one OrderEvent",
            content: { "text/event-stream": { schema: ref("OrderEvent") } },
          },
          "400": errorResponse("Malformed Last-Event-ID"),
          "429": errorResponse("Too many streams for this user"),
        },
      },
    },
    "/api/v1/executions": {
      post: {
        summary: "Ingest execution reports from a venue (one or an array)",
        security: [{ ingest: [] }],
        requestBody: {
          content: json({
            oneOf: [ref("ExecutionReport"), { type: "array", items: ref("ExecutionReport") }],
          }),
        },
        responses: {
          "201": { description: "Applied" },
          "200": {
            description:
              "Duplicate exec_id: nothing new; for an array, `{results: [{status, …}]}` " +
              "with one status per report (503 for one refused for now; then a Retry-After)",
          },
          "400": errorResponse("Invalid report"),
          "404": errorResponse("Unknown order"),
          "409": errorResponse("Illegal transition"),
          "503": errorResponse(
            "Ingest disabled (no INGEST_TOKEN; no Retry-After), or refused for now (overload: " +
              "WRITE_QUEUE_LIMIT; the store busy or away) with Retry-After",
          ),
        },
      },
    },
    ...pushPaths(),
    ...socketPaths(),
    "/api/v1/openapi.json": {
      get: {
        summary: "This document",
        security: [],
        responses: { "200": { description: "OpenAPI 3.1" } },
      },
    },
  };
}

/** The route serving the document. */
export function openApiRoutes(): Hono<AppEnv> {
  const doc = openApiDocument();
  return new Hono<AppEnv>().get("/api/v1/openapi.json", (c) => c.json(doc));
}
