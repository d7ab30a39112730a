/** The OpenAPI document covers every /api/v1 route the app serves, and its examples validate. */
import assert from "node:assert/strict";
import { ExecutionReport, OrderRequest, OrderSchema, ReplaceRequest } from "../../orders/model.ts";
import { EXAMPLES } from "../../routes/openapi.ts";
import { PUSH_EXAMPLES } from "../../routes/openapi_push.ts";
import { PushDeviceBody } from "../../routes/push.ts";
import { withApp } from "../helpers.ts";

Deno.test("openapi: every /api/v1 route is documented and every example validates", async () => {
  await withApp(async (app) => {
    const doc = await (await app.request("/api/v1/openapi.json")).json();
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const served = app.routes
      .filter((r) => r.path.startsWith("/api/v1/") && r.method !== "ALL")
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    assert.ok(served.length >= 14);
    for (const route of served) assert.ok(documented.has(route), `${route} is not in openapi.json`);
  });
  OrderRequest.parse(EXAMPLES.OrderRequest);
  ReplaceRequest.parse(EXAMPLES.ReplaceRequest);
  ExecutionReport.parse(EXAMPLES.ExecutionReport);
  OrderSchema.parse(EXAMPLES.Order);
  PushDeviceBody.parse(PUSH_EXAMPLES.PushDevice);
});
