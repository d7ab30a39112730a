/**
 * The built client library (client/dist) in Chromium, in a plain page with no htmx: it follows a
 * user's orders through a server restart, and through the tab hidden (the live connection closes,
 * as push takes over) then shown again (it catches up).
 */
import assert from "node:assert/strict";
import { api, eventually, freePort, INGEST_TOKEN, login, spawnServer } from "../helpers.ts";
import { launch, NO_BROWSER } from "./browser.ts";

const ROOT = new URL("../..", import.meta.url);

/** A plain page: the user's orders as list items, the connection's state, visibility wired in. */
const PAGE = (token: string) =>
  `<!doctype html>
<meta charset="utf-8"><title>plain client</title>
<p id="state">closed</p><ul id="orders"></ul>
<script type="module">
  import { BlotterClient } from "./index.js";
  const client = new BlotterClient({ baseUrl: location.origin, token: ${JSON.stringify(token)} });
  const list = document.getElementById("orders");
  client.on("state", (s) => (document.getElementById("state").textContent = s));
  const draw = (o) => {
    let li = document.getElementById("o-" + o.id);
    if (!li) (li = document.createElement("li"), li.id = "o-" + o.id, list.append(li));
    li.dataset.status = o.status;
    li.dataset.filled = o.filled_qty;
    li.textContent = o.symbol + " " + o.status + " " + o.filled_qty;
  };
  client.on("order", draw);
  client.on("reload", () => client.orders().forEach(draw));
  document.addEventListener("visibilitychange", () => client.setForeground(!document.hidden));
  window.blotter = client;
  await client.start();
</script>`;

/** Hides or shows the tab, as the browser tells a page (visibilityState and its event). */
const visibility = (hidden: boolean) => `
  Object.defineProperty(document, "hidden", { configurable: true, get: () => ${hidden} });
  Object.defineProperty(document, "visibilityState", {
    configurable: true, get: () => "${hidden ? "hidden" : "visible"}" });
  document.dispatchEvent(new Event("visibilitychange"));`;

Deno.test({
  name: "e2e: the built client in a plain page follows orders through a restart and a hidden tab",
  ignore: NO_BROWSER,
  async fn() {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["task", "client:build"],
      cwd: ROOT.pathname,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    const js = await Deno.readTextFile(new URL("client/dist/index.js", ROOT));
    const dir = await Deno.makeTempDir();
    const port = freePort();
    const env = {
      AUTH_MODE: "dev",
      KV_PATH: `${dir}/blotter.kv`,
      INGEST_TOKEN,
      RATE_LIMIT: "off",
      HEARTBEAT_MS: "1000",
      PORT: String(port),
    };
    let server = await spawnServer(env);
    const url = server.url;
    const browser = await launch();
    try {
      const { token } = await login(url, "pia");
      const page = await browser.newPage();
      // The page and the library are served on Blotter's own origin (no CORS needed), by the test.
      await page.route(`${url}/plain/**`, (route) => {
        const path = new URL(route.request().url()).pathname;
        return path.endsWith(".js")
          ? route.fulfill({ body: js, contentType: "text/javascript" })
          : route.fulfill({ body: PAGE(token), contentType: "text/html" });
      });
      await page.goto(`${url}/plain/`);
      await page.waitForSelector("#state:text('live')");
      const placed = await api(url, token, "POST", "/api/v1/orders", {
        symbol: "AAPL",
        asset_class: "stock",
        side: "buy",
        qty: "10",
      });
      const id = placed.json.id;
      const fill = (n: number) =>
        api(url, INGEST_TOKEN, "POST", "/api/v1/executions", {
          order_id: id,
          exec_id: `p-${n}`,
          type: n === 0 ? "new" : "partial_fill",
          at: new Date().toISOString(),
          ...(n === 0 ? {} : { last_qty: "1", last_price: "187.41" }),
        });
      await fill(0);
      await page.waitForSelector(`#o-${id}[data-status=new]`);
      // The server restarts; the page reconnects by itself and misses nothing.
      await server.stop();
      server = await spawnServer(env);
      await fill(1);
      await fill(2);
      await page.waitForSelector(`#o-${id}[data-filled="2"]`, { timeout: 20_000 });
      await page.waitForSelector("#state:text('live')", { timeout: 15_000 });
      // Hidden: no live connection; fills meanwhile; shown: caught up.
      await page.evaluate(visibility(true));
      await page.waitForSelector("#state:text('paused')");
      await fill(3);
      await eventually(async () =>
        (await api(url, token, "GET", `/api/v1/orders/${id}`)).json.filled_qty === "3"
      );
      assert.equal(await page.getAttribute(`#o-${id}`, "data-filled"), "2");
      await page.evaluate(visibility(false));
      await page.waitForSelector(`#o-${id}[data-filled="3"]`);
      await page.waitForSelector("#state:text('live')");
    } finally {
      await browser.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
