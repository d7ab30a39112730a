/**
 * Accessible and installable at both widths: axe-core finds no serious or critical violation on
 * the sign-in page, the blotter (with open, filled and rejected orders), an order's timeline and
 * the devices page, at 1280 and at 375 px; a 375 px page never scrolls sideways; every status says
 * itself in words, not colour alone; reduced motion turns the motion off; and Chromium reports
 * nothing standing between the app and being installed.
 */
import assert from "node:assert/strict";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { api, login, startServer, type TestServer } from "../helpers.ts";
import { horizontalOverflow, installabilityErrors, seriousViolations } from "./a11y.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

/** The two screens every page must suit. */
const WIDTHS: ReadonlyArray<[name: string, options: BrowserContextOptions]> = [
  ["desktop", { viewport: { width: 1280, height: 800 } }],
  ["phone", { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true }],
];

/** Places an open (resting limit), a filled and a rejected order; returns the open one's id. */
async function placeMix(server: TestServer, username: string): Promise<string> {
  const { token } = await login(server.url, username);
  const place = (body: Record<string, string>) =>
    api(server.url, token, "POST", "/api/v1/orders", {
      asset_class: "stock",
      side: "buy",
      ...body,
    });
  await place({ symbol: "AAPL", type: "market", qty: "10", time_in_force: "day" });
  await place({ symbol: "ZZZZ", type: "market", qty: "5", time_in_force: "day" });
  const open = await place({
    symbol: "MSFT",
    type: "limit",
    qty: "20",
    limit_price: "1.00",
    time_in_force: "gtc",
  });
  assert.equal(open.status, 201);
  return open.json.id;
}

/** Asserts axe-core's verdict on the page, naming what it found if anything. */
async function assertAccessible(page: Page, what: string): Promise<void> {
  const violations = await seriousViolations(page);
  assert.deepEqual(violations, [], `${what}: ${JSON.stringify(violations, null, 1)}`);
}

async function checkWidth(browser: Browser, server: TestServer, name: string, openId: string) {
  const context = await browser.newContext(WIDTHS.find(([n]) => n === name)![1]);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const pages: string[] = [];
  const check = async (what: string) => {
    await assertAccessible(page, `${what} at ${name}`);
    assert.equal(await horizontalOverflow(page), 0, `${what} at ${name} scrolls sideways`);
    pages.push(what);
  };

  await page.goto(`${server.url}/login`);
  await check("sign-in");

  await signIn(page, server.url, "ally");
  await page.waitForSelector("#orders-body tr[data-status=filled]", { timeout: 15_000 });
  await page.waitForSelector("#orders-body tr[data-status=rejected]");
  await page.waitForSelector("#orders-body tr[data-status=new]");
  await check("blotter");
  // Colour is never the only carrier: every row's status and side are in words too.
  const words = await page.evaluate<string[]>(`[...document.querySelectorAll(
    "#orders-body tr[data-status] .badge")].map((b) => b.textContent.trim())`);
  assert.deepEqual(words.toSorted(), ["Accepted", "Filled", "Rejected"]);
  await page.screenshot({ path: await artifactPath(`a11y-blotter-${name}`) });

  if (name === "phone") {
    await page.click("#new-order");
    await page.waitForSelector("#ticket-panel.open [name=symbol]:focus");
    await check("blotter with the ticket open");
    await page.keyboard.press("Escape");
    await page.click("#menu-toggle");
    await page.waitForSelector("#site-nav.open a[href='/devices']");
    await check("blotter with the menu open");
    await page.keyboard.press("Escape");
  }

  await page.goto(`${server.url}/orders/${openId}`);
  await page.waitForSelector("#connection[data-state=live]");
  await check("order timeline");

  await page.goto(`${server.url}/devices`);
  await page.waitForSelector("[data-session-id]");
  await check("devices");
  assert.deepEqual(errors, []);
  await context.close();
  return pages;
}

Deno.test({
  name: "e2e: no serious or critical axe-core violation on any page at 1280 and 375 px",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.1" });
    const browser = await launch();
    try {
      const openId = await placeMix(server, "ally");
      for (const [name] of WIDTHS) {
        const checked = await checkWidth(browser, server, name, openId);
        assert.ok(checked.length >= 4, `${name}: checked ${checked.join(", ")}`);
      }
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "e2e: Chromium finds the app installable: manifest, icons, theme colour, service worker",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer();
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await signIn(page, server.url, "installer");
      // The service worker is registered by the page; installability is judged once it runs.
      await page.evaluate("navigator.serviceWorker.ready.then(() => true)");
      assert.deepEqual(await installabilityErrors(page), []);

      const manifest = await (await fetch(`${server.url}/static/manifest.json`)).json();
      const sizes = new Map<string, string>();
      for (const icon of manifest.icons) {
        if (icon.type !== "image/png") continue;
        const png = new Uint8Array(await (await fetch(`${server.url}${icon.src}`)).arrayBuffer());
        sizes.set(`${icon.sizes} ${icon.purpose}`, pngSize(png));
      }
      assert.deepEqual(Object.fromEntries(sizes), {
        "192x192 any": "192x192",
        "512x512 any": "512x512",
        "512x512 maskable": "512x512",
      });
      const head = async (sel: string) => await page.getAttribute(sel, "href");
      const touch = await head("link[rel=apple-touch-icon]");
      const res = await fetch(`${server.url}${touch}`);
      assert.equal(pngSize(new Uint8Array(await res.arrayBuffer())), "180x180");
      const favicon = await head("link[rel=icon][type='image/png']");
      const icon = await fetch(`${server.url}${favicon}`);
      assert.equal(pngSize(new Uint8Array(await icon.arrayBuffer())), "32x32");
      assert.equal(await page.getAttribute("meta[name=theme-color]", "content"), "#0f1419");
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "e2e: with reduced motion asked for, toasts and rows do not animate",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer({ SIMULATOR: "on", SIM_SPEED: "0.1" });
    const browser = await launch();
    try {
      const motion = async (reducedMotion: "reduce" | "no-preference") => {
        const context = await browser.newContext({ reducedMotion });
        const page = await context.newPage();
        await signIn(page, server.url, `still-${reducedMotion}`);
        await page.fill("#order-ticket input[name=symbol]", "AAPL");
        await page.fill("#order-ticket input[name=qty]", "1");
        await page.press("#order-ticket input[name=qty]", "Enter");
        await page.waitForSelector("#toasts .toast:last-child");
        await page.waitForSelector("#orders-body tr.order");
        const styles = await page.evaluate<string[]>(`[
          getComputedStyle(document.querySelector("#toasts .toast")).animationName,
          getComputedStyle(document.querySelector("#orders-body tr.order")).transitionDuration,
        ]`);
        await context.close();
        return styles;
      };
      assert.deepEqual(await motion("reduce"), ["none", "0s"]);
      assert.notDeepEqual(await motion("no-preference"), ["none", "0s"]);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

/** A PNG's size from its IHDR chunk, as "WxH". */
function pngSize(png: Uint8Array): string {
  const view = new DataView(png.buffer, png.byteOffset);
  assert.equal(view.getUint32(12), 0x49484452, "an IHDR chunk (a PNG)");
  return `${view.getUint32(16)}x${view.getUint32(20)}`;
}
