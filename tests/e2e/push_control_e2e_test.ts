/**
 * The notification control in Chromium: the service worker registers at scope `/`, permission is
 * asked only from the button, and the control shows the right state for default, granted and
 * denied permission.
 */
import assert from "node:assert/strict";
import type { BrowserContext } from "playwright-core";
import { startServer } from "../helpers.ts";
import { artifactPath, launch, NO_BROWSER, signIn } from "./browser.ts";

/** Counts calls to Notification.requestPermission in the page (set before any page script). */
async function countPermissionRequests(context: BrowserContext): Promise<void> {
  await context.addInitScript(`
    window.permissionRequests = 0;
    const original = Notification.requestPermission.bind(Notification);
    Notification.requestPermission = (...args) => {
      window.permissionRequests++;
      return original(...args);
    };
  `);
}

Deno.test({
  name: "e2e: the service worker registers; the alerts control follows the permission",
  ignore: NO_BROWSER,
  async fn() {
    const server = await startServer();
    const browser = await launch();
    try {
      // Default permission: a button, and no prompt until it is clicked.
      const fresh = await browser.newContext();
      await countPermissionRequests(fresh);
      const page = await fresh.newPage();
      await signIn(page, server.url, "nia");
      await page.waitForSelector("#push-control[data-state=default] #enable-push:visible");
      const [scope, script] = await page.evaluate<[string, string]>(
        `navigator.serviceWorker.ready.then((r) => [r.scope, r.active.scriptURL])`,
      );
      assert.equal(scope, `${server.url}/`);
      assert.equal(script, `${server.url}/sw.js`);
      assert.equal(await page.evaluate("window.permissionRequests"), 0, "not asked on load");
      await page.click("#enable-push");
      await page.waitForFunction("window.permissionRequests === 1");
      await page.screenshot({ path: await artifactPath("push-default") });

      // Denied: says so, and how to undo it; no button.
      const denied = await browser.newContext();
      const cdp = await denied.newCDPSession(await denied.newPage());
      // Playwright can grant but not deny; Chromium's DevTools protocol can, per context.
      const { targetInfo } = await cdp.send("Target.getTargetInfo");
      await cdp.send("Browser.setPermission", {
        permission: { name: "notifications" },
        setting: "denied",
        origin: server.url,
        browserContextId: targetInfo.browserContextId,
      });
      const deniedPage = denied.pages()[0];
      await signIn(deniedPage, server.url, "nia");
      await deniedPage.waitForSelector("#push-control[data-state=denied]");
      assert.match(await deniedPage.textContent("#push-control") ?? "", /site settings/);
      assert.equal(await deniedPage.isVisible("#enable-push"), false);
      await deniedPage.screenshot({ path: await artifactPath("push-denied") });

      // Granted: the page subscribes by itself. This machine has no route to Chromium's push
      // service, so the honest outcome here is "unavailable"; with one it is "on".
      const granted = await browser.newContext();
      await granted.grantPermissions(["notifications"], { origin: server.url });
      await countPermissionRequests(granted);
      const grantedPage = await granted.newPage();
      await signIn(grantedPage, server.url, "nia");
      await grantedPage.waitForSelector(
        "#push-control[data-state=on], #push-control[data-state=unavailable]",
        { timeout: 20_000 },
      );
      assert.equal(await grantedPage.isVisible("#enable-push"), false);
      assert.equal(await grantedPage.evaluate("window.permissionRequests"), 0);
      await grantedPage.screenshot({ path: await artifactPath("push-granted") });
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});
