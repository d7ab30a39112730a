/** The OpenAPI document covers every /api/v1 route the app serves, and its examples validate. */
import assert from "node:assert/strict";
import { loadConfig } from "../../config.ts";
import { silentLogger } from "../../log.ts";
import { ExecutionReport, OrderRequest, OrderSchema, ReplaceRequest } from "../../orders/model.ts";
import { Hub } from "../../realtime/hub.ts";
import { Metrics } from "../../realtime/metrics.ts";
import { createPushDispatcher } from "../../realtime/push.ts";
import { createApp } from "../../routes/app.ts";
import { EXAMPLES } from "../../routes/openapi.ts";
import { openKvStore } from "../../store/kv.ts";

Deno.test("openapi: every /api/v1 route is documented and every example validates", async () => {
  const config = loadConfig({ AUTH_MODE: "dev", KV_PATH: ":memory:" });
  const store = await openKvStore(":memory:");
  const metrics = new Metrics();
  const hub = new Hub({ maxStreamsPerUser: 10, metrics });
  const push = await createPushDispatcher({ config, store, hub, metrics, log: silentLogger });
  const app = createApp({
    config,
    store,
    hub,
    push,
    metrics,
    log: silentLogger,
    feedStatus: () => ({ ok: true }),
    now: () => new Date(),
  });
  try {
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
    OrderRequest.parse(EXAMPLES.OrderRequest);
    ReplaceRequest.parse(EXAMPLES.ReplaceRequest);
    ExecutionReport.parse(EXAMPLES.ExecutionReport);
    OrderSchema.parse(EXAMPLES.Order);
  } finally {
    await push.close();
    await store.close();
  }
});
