/**
 * Orders that arrive together all get their rows. The HTML stream merges what happens within its
 * coalescing window into one message; when that message updates a row already on screen and also
 * brings new orders, every new order must still land in `#orders-body` (htmx parses a message as
 * a template, and a message that opened with a bare row used to drop the new rows' wrappers).
 */
import assert from "node:assert/strict";
import { api, eventually, INGEST_TOKEN, login, startServer } from "../helpers.ts";
import { launch, NO_BROWSER, signIn } from "./browser.ts";

const LIMIT = {
  symbol: "MSFT",
  asset_class: "stock",
  side: "buy",
  type: "limit",
  limit_price: "1.00",
  time_in_force: "gtc",
};

Deno.test({
  name: "e2e: an update and new orders in one stream message: every new order gets its row",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer();
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await signIn(page, server.url, "burst");
      const { token } = await login(server.url, "burst");
      const first = await api(server.url, token, "POST", "/api/v1/orders", { ...LIMIT, qty: "1" });
      await page.waitForSelector(`#order-${first.json.id}[data-status=pending_new]`);

      // The venue accepts the first order, and three more are placed at once: one window.
      const accepted = await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
        order_id: first.json.id,
        exec_id: "burst-new",
        type: "new",
        at: new Date().toISOString(),
      });
      assert.equal(accepted.status, 201);
      const more = await Promise.all(
        ["2", "3", "4"].map((qty) =>
          api(server.url, token, "POST", "/api/v1/orders", { ...LIMIT, qty })
        ),
      );
      const ids = [first.json.id, ...more.map((r) => r.json.id)];

      const onScreen = () =>
        page.evaluate<string[]>(
          `[...document.querySelectorAll("#orders-body tr.order")].map((r) => r.id.slice(6))`,
        );
      await eventually(async () => (await onScreen()).length === 4, 15_000).catch(async (e) => {
        throw new Error(`${e.message}: rows for ${await onScreen()} of ${ids}`);
      });
      assert.deepEqual((await onScreen()).toSorted(), ids.toSorted());
      await page.waitForSelector(`#order-${first.json.id}[data-status=new]`);
      // Nothing landed anywhere else on the page (e.g. inside the stream's own element).
      assert.equal(await page.innerHTML("#live"), "");
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});
