/**
 * Signing a device out from another: device B's devices page ends device A's session. A's live
 * updates stop at once and its next action lands on the sign-in page; B stays live throughout.
 */
import assert from "node:assert/strict";
import { api, INGEST_TOKEN, login, startServer } from "../helpers.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

Deno.test({
  name: "e2e: signing device A out from device B's devices page ends A's updates; B stays live",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer();
    const browser = await launch();
    try {
      const a = await (await browser.newContext()).newPage();
      const b = await (await browser.newContext()).newPage();
      await signIn(a, server.url, "dora");
      await signIn(b, server.url, "dora");

      // B opens the devices page and signs the other device (A) out.
      await b.goto(`${server.url}/devices`);
      assert.equal(await b.locator(".devices li").count(), 2);
      await b.click(".devices li:not(.current) button");
      await b.waitForURL(`${server.url}/devices`);
      assert.equal(await b.locator(".devices li").count(), 1);
      await b.screenshot({ path: await artifactPath("devices-after-revoke") });

      // A's stream was ended by the server and its reconnect is refused (401), so A's page goes
      // to the sign-in page by itself, without waiting for the trader's next click.
      await a.waitForURL(/\/login/, { timeout: 10_000 });
      await a.screenshot({ path: await artifactPath("devices-revoked-device") });
      // And the old session stays dead: the orders page sends it back to sign in.
      await a.goto(`${server.url}/orders`);
      await a.waitForURL(/\/login/);

      // B is still live: a new order and its fill arrive without a reload.
      await b.goto(`${server.url}/orders`);
      await b.waitForSelector("#connection[data-state=live]");
      const { token } = await login(server.url, "dora");
      const { json: order } = await api(server.url, token, "POST", "/api/v1/orders", {
        symbol: "MSFT",
        asset_class: "stock",
        side: "buy",
        qty: "2",
      });
      await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", [
        { order_id: order.id, exec_id: "d1", type: "new", at: new Date().toISOString() },
        {
          order_id: order.id,
          exec_id: "d2",
          type: "fill",
          at: new Date().toISOString(),
          last_qty: "2",
          last_price: "410.5",
        },
      ]);
      await b.waitForSelector(`#order-${order.id}[data-status=filled]`, { timeout: 10_000 });
      assert.equal(await b.getAttribute("#connection", "data-state"), "live");
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});
