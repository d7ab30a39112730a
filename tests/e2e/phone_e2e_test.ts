/**
 * The blotter in a pocket (375 × 812): the rows come first; the ticket opens from "New order",
 * submits and closes with the keyboard alone, focus going in and coming back; the new order's row
 * is on the first screen and no toast covers it; toasts can be dismissed. And an order's own page
 * stays live like the blotter.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { api, eventually, login, startServer } from "../helpers.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

const PHONE = { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true };

/** Presses Tab until `selector` has focus (at most `limit` times); fails if it never does. */
async function tabTo(page: Page, selector: string, limit = 40): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (
      await page.evaluate<boolean>(`document.activeElement.matches(${JSON.stringify(selector)})`)
    ) {
      return;
    }
    await page.keyboard.press("Tab");
  }
  assert.fail(`Tab never reached ${selector}`);
}

/** The page-space boxes of an element and of every visible toast. */
function boxes(page: Page, rowSelector: string) {
  return page.evaluate<{ row: DOMRect; toasts: DOMRect[]; height: number }>(`(() => {
    const box = (el) => el.getBoundingClientRect().toJSON();
    return {
      row: box(document.querySelector(${JSON.stringify(rowSelector)})),
      toasts: [...document.querySelectorAll("#toasts .toast")]
        .filter((t) => t.checkVisibility()).map(box),
      height: innerHeight,
    };
  })()`);
}

const overlaps = (a: DOMRect, b: DOMRect) =>
  a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

Deno.test({
  name:
    "e2e: on a phone the ticket opens, submits and closes by keyboard; the new row shows, uncovered",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.1" });
    const browser = await launch();
    try {
      const page = await (await browser.newContext(PHONE)).newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await signIn(page, server.url, "pocket");
      // Earlier orders fill the screen below, so the new row must earn its place at the top.
      const { token } = await login(server.url, "pocket");
      for (let i = 0; i < 8; i++) {
        await api(server.url, token, "POST", "/api/v1/orders", {
          symbol: "MSFT",
          asset_class: "stock",
          side: "buy",
          type: "limit",
          qty: String(i + 1),
          limit_price: "1.00",
          time_in_force: "gtc",
        });
      }
      const rows = () =>
        page.evaluate<string>(
          `[...document.querySelectorAll("#orders-body tr.order")].map((r) => r.dataset.status).join()`,
        );
      await eventually(async () => (await rows()).split(",").length === 8, 20_000).catch(
        async (e) => {
          throw new Error(`${e.message}: rows ${await rows()}`);
        },
      );
      assert.equal(await page.isVisible("#order-ticket"), false, "rows first; ticket closed");

      await tabTo(page, "#new-order");
      const outline = await page.evaluate<string>(
        "getComputedStyle(document.activeElement).outlineStyle",
      );
      assert.notEqual(outline, "none", "keyboard focus is visible");
      await page.keyboard.press("Enter");
      await page.waitForSelector("#ticket-panel.open[role=dialog][aria-modal=true]");
      assert.equal(await page.evaluate<string>("document.activeElement.name"), "symbol");
      assert.equal(await page.getAttribute("#new-order", "aria-expanded"), "true");
      // Escape closes it and gives focus back; Enter opens it again.
      await page.keyboard.press("Escape");
      await page.waitForSelector("#ticket-panel:not(.open)", { state: "attached" });
      assert.equal(await page.evaluate<string>("document.activeElement.id"), "new-order");
      await page.keyboard.press("Enter");
      await page.waitForSelector("#ticket-panel.open");

      await page.keyboard.type("NVDA");
      await tabTo(page, "#order-ticket [name=qty]");
      await page.keyboard.type("10");
      await page.keyboard.press("Enter");
      await page.waitForSelector("#ticket-panel:not(.open)", {
        state: "attached",
        timeout: 10_000,
      });
      assert.equal(await page.evaluate<string>("document.activeElement.id"), "new-order");

      const row = "#orders-body tr.order:first-child";
      await page.waitForSelector(`${row} >> text=NVDA`, { timeout: 10_000 });
      await page.waitForSelector("#toasts .toast:last-child");
      for (const moment of ["placed", "filled"]) {
        if (moment === "filled") {
          await page.waitForSelector(`${row}[data-status=filled]`, { timeout: 15_000 });
        }
        const seen = await boxes(page, row);
        assert.ok(seen.row.top >= 0 && seen.row.bottom <= seen.height, `${moment}: on screen`);
        assert.ok(seen.toasts.length > 0, `${moment}: a toast is showing`);
        for (const t of seen.toasts) {
          assert.ok(!overlaps(seen.row, t), `${moment}: a toast covers the new row`);
        }
      }
      await page.screenshot({ path: await artifactPath("phone-after-order") });

      // A toast goes when dismissed (the newest one, just seen above).
      await page.evaluate(`document.querySelector("#toasts .toast:last-child").id = "dismiss-me"`);
      await page.click("#dismiss-me .toast-close");
      assert.equal(await page.locator("#dismiss-me").count(), 0);

      // A tap on the dimmed page above the sheet closes it too.
      await page.click("#new-order");
      await page.waitForSelector("#ticket-panel.open");
      await page.mouse.click(20, 120);
      await page.waitForSelector("#ticket-panel:not(.open)", { state: "attached" });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "e2e: an order's timeline page stays live: new entries and its status arrive unasked",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.1" });
    const browser = await launch();
    try {
      for (const options of [{}, PHONE]) {
        const page = await (await browser.newContext(options)).newPage();
        await signIn(page, server.url, "watcher");
        const { token } = await login(server.url, "watcher");
        const placed = await api(server.url, token, "POST", "/api/v1/orders", {
          symbol: "MSFT",
          asset_class: "stock",
          side: "buy",
          type: "limit",
          qty: "3",
          limit_price: "1.00",
          time_in_force: "gtc",
        });
        const id = placed.json.id;
        await page.goto(`${server.url}/orders/${id}`);
        await page.waitForSelector("#connection[data-state=live]");
        await page.waitForSelector(`#order-${id}[data-status=new]`, { timeout: 10_000 });
        assert.equal(await page.textContent("#order-status"), "Accepted");

        assert.equal(
          (await api(server.url, token, "POST", `/api/v1/orders/${id}/cancel`)).status,
          202,
        );
        await page.waitForSelector(`#order-${id}[data-status=canceled]`, { timeout: 10_000 });
        await page.waitForSelector(`#timeline-${id} .event-canceled`);
        await eventually(() =>
          page.evaluate<boolean>(
            `document.querySelector("#order-status").textContent === "Canceled"`,
          )
        );
        assert.equal(await page.locator(`#timeline-${id} .event-pending_cancel`).count(), 1);
        await page.close();
      }
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});
