/**
 * Chromium for browser tests (Debian's, driven by playwright-core; never `playwright install`).
 * Without it the browser tests are skipped with one line, unless REQUIRE_BROWSER=1 (CI).
 */
import { type Browser, chromium, type Page } from "playwright-core";

const EXECUTABLE = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** Flags that work on these machines (root, closed network). */
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** True when browser tests must be skipped (says so once). */
export const NO_BROWSER: boolean = (() => {
  try {
    Deno.statSync(EXECUTABLE);
    return false;
  } catch {
    if (Deno.env.get("REQUIRE_BROWSER") === "1") {
      throw new Error(`REQUIRE_BROWSER=1 but there is no Chromium at ${EXECUTABLE}`);
    }
    console.warn("Browser tests skipped: install Chromium (apt-get install -y chromium)");
    return true;
  }
})();

/** Launches headless Chromium. */
export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
}

/** Where screenshots go (not committed). */
export async function artifactPath(name: string): Promise<string> {
  await Deno.mkdir("test-artifacts", { recursive: true });
  return `test-artifacts/${name}.png`;
}

/** Signs in through the login form and waits until the blotter's stream is live. */
export async function signIn(page: Page, url: string, username: string): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill("input[name=username]", username);
  await page.click("button[type=submit]");
  await page.waitForURL(`${url}/orders`);
  await page.waitForSelector("#connection[data-state=live]");
}
