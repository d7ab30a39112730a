/**
 * The README's first command: `deno task dev` starts Blotter with nothing else configured — dev
 * sign-in and the built-in venue on — and an order placed through it is worked to `filled`.
 */
import assert from "node:assert/strict";
import { api, eventually, login, spawnServer } from "../helpers.ts";

Deno.test({
  name: "deno task dev: starts with dev sign-in and the venue on, and fills an order",
  async fn() {
    // Nothing but a port and an in-memory store: AUTH_MODE and SIMULATOR come from the task.
    const server = await spawnServer({ KV_PATH: ":memory:", SIM_SPEED: "0.05" }, ["task", "dev"]);
    try {
      assert.match(server.output(), /"auth":"dev","simulator":true/);
      const { token } = await login(server.url, "devon");
      const { json: order } = await api(server.url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "10",
      });
      await eventually(async () =>
        (await api(server.url, token, "GET", `/api/v1/orders/${order.id}`)).json.status ===
          "filled"
      );
    } finally {
      await server.stop();
    }
  },
});
