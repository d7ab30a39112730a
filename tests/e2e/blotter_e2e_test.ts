/**
 * The trader's journey in a real browser on the embedded store: sign in on two devices, place an
 * order on the ticket, watch it go submitted → partially filled → filled on both with no refresh,
 * see a rejection's reason, and log out one device while the other stays live.
 */
import assert from "node:assert/strict";
import { startServer } from "../helpers.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

Deno.test({
  name: "e2e: an order placed on one device fills live on every device; a rejection shows why",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.3" });
    const browser = await launch();
    try {
      const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 } }))
        .newPage();
      const desktop = await (await browser.newContext()).newPage();
      const errors: string[] = [];
      for (const p of [phone, desktop]) {
        p.on("pageerror", (e) => errors.push(String(e)));
      }
      await signIn(phone, server.url, "trader1");
      await signIn(desktop, server.url, "trader1");

      // Every status the row passes through, seen on the other device.
      // (A string: this code runs in the page, not in Deno.)
      await desktop.evaluate(`
        window.seen = [];
        new MutationObserver(() => {
          for (const row of document.querySelectorAll("#orders-body tr[data-status]")) {
            const s = row.getAttribute("data-status");
            if (window.seen[window.seen.length - 1] !== s) window.seen.push(s);
          }
        }).observe(document.body, { subtree: true, childList: true, attributes: true });
      `);

      // A phone opens the ticket from "New order"; it closes again after each order goes in.
      await phone.click("#new-order");
      await phone.fill("#order-ticket input[name=symbol]", "AAPL");
      await phone.fill("#order-ticket input[name=qty]", "10");
      await phone.press("#order-ticket input[name=qty]", "Enter");

      const row = "#orders-body tr[id^=order-]";
      await phone.waitForSelector(`${row}[data-status=filled]`, { timeout: 15_000 });
      await desktop.waitForSelector(`${row}[data-status=filled]`, { timeout: 15_000 });
      const seen = await desktop.evaluate<string[]>("window.seen");
      assert.ok(seen.includes("partially_filled"), `desktop saw ${seen.join(" → ")}`);
      assert.equal(seen[seen.length - 1], "filled");
      assert.equal(await desktop.locator(row).count(), 1, "one row per order");
      assert.match(await desktop.locator(`${row} .filled`).innerText(), /^10 \/ 10 @ /);

      // A rejection: its reason is on the row and in a toast.
      await phone.click("#new-order");
      await phone.fill("#order-ticket input[name=symbol]", "ZZZZ");
      await phone.fill("#order-ticket input[name=qty]", "1");
      await phone.click("#order-ticket button[type=submit]");
      await desktop.waitForSelector(`${row}[data-status=rejected]`, { timeout: 10_000 });
      assert.match(
        await desktop.locator(`${row}[data-status=rejected] .reason`).innerText(),
        /unknown symbol/,
      );
      await desktop.waitForSelector("#toasts .toast-rejected");
      assert.match(
        await desktop.locator("#toasts .toast-rejected").first().innerText(),
        /unknown symbol/,
      );

      await desktop.screenshot({ path: await artifactPath("blotter-desktop") });
      await phone.screenshot({ path: await artifactPath("blotter-phone"), fullPage: true });

      // Log out the phone: its stream ends, the desktop stays live and keeps updating.
      await phone.click("form[action='/logout'] button");
      await phone.waitForURL(`${server.url}/login`);
      await phone.fill("input[name=username]", "trader1").catch(() => {});
      const other = await (await browser.newContext()).newPage();
      await signIn(other, server.url, "trader1");
      await other.fill("#order-ticket input[name=symbol]", "BTC-USD");
      await other.fill("#order-ticket input[name=qty]", "0.00012345");
      await other.click("#order-ticket button[type=submit]");
      await desktop.waitForSelector(
        `${row}[data-status=filled] >> text=BTC-USD`,
        { timeout: 10_000 },
      );
      assert.equal(await desktop.getAttribute("#connection", "data-state"), "live");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "e2e: the ticket sizes a market order by qty or by notional, in any asset class",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.1" });
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await signIn(page, server.url, "sizer");
      const place = async (symbol: string, field: "qty" | "notional", value: string) => {
        await page.fill("#order-ticket input[name=symbol]", symbol);
        await page.fill(`#order-ticket input[name=${field}]`, value);
        await page.click("#order-ticket button[type=submit]");
        await page.waitForSelector(`#orders-body tr[data-status=filled] >> text=${symbol}`, {
          timeout: 15_000,
        });
      };
      await place("AAPL", "notional", "100.00"); // a stock by amount
      await place("VFIAX", "qty", "2"); // a mutual fund by quantity
      await place("VOO", "qty", "1");
      // Limit orders are sized by quantity only.
      await page.selectOption("#order-ticket select[name=type]", "limit");
      assert.equal(await page.isVisible("#order-ticket input[name=notional]"), false);
      assert.equal(await page.isVisible("#order-ticket input[name=qty]"), true);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});
