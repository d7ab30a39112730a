/**
 * Accessibility and layout checks for browser tests: axe-core (the npm package, pinned in
 * deno.json) injected into the page and run there, horizontal overflow, and Chromium's own
 * installability verdict over CDP.
 */
import { createRequire } from "node:module";
import type { Page } from "playwright-core";

const require = createRequire(import.meta.url);
let axeSource: string | null = null;

/** One axe-core violation, as much of it as a failing assertion needs to say what to fix. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core on the page and returns its serious and critical violations. The script is
 * evaluated through the DevTools protocol, which the page's strict CSP does not govern (a
 * `<script>` tag would be refused, as it should be).
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await Deno.readTextFile(require.resolve("axe-core/axe.min.js"));
  await page.evaluate(axeSource);
  // A string: this code runs in the page, not in Deno.
  const violations = await page.evaluate<AxeViolation[]>(`
    axe.run(document, { resultTypes: ["violations"] }).then((r) =>
      r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
      }))
    )
  `);
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** How many CSS pixels the page is wider than its viewport (0: no horizontal scrolling). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate<number>(
    "document.documentElement.scrollWidth - document.documentElement.clientWidth",
  );
}

/**
 * Chromium's reasons this page is not installable as an app (CDP
 * `Page.getInstallabilityErrors`), less `in-incognito`: every headless test context is one.
 */
export async function installabilityErrors(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors") as {
      installabilityErrors: {
        errorId: string;
        errorArguments: { name: string; value: string }[];
      }[];
    };
    return installabilityErrors
      .filter((e) => e.errorId !== "in-incognito")
      .map((e) => [e.errorId, ...e.errorArguments.map((a) => `${a.name}=${a.value}`)].join(" "));
  } finally {
    await cdp.detach();
  }
}
