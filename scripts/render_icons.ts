/**
 * Renders the app icons (static/icons/*.png) from their SVG sources in headless Chromium: the page
 * shows one SVG at the target size and the screenshot is the PNG. Run: deno task icons.
 * Chromium renders SVG exactly as browsers will show it, so no image tool is needed.
 */
import { chromium } from "playwright-core";

const ICONS = new URL("../static/icons/", import.meta.url);

/** [source SVG, output PNG, size in px]. */
const TARGETS: ReadonlyArray<[string, string, number]> = [
  ["icon.svg", "icon-192.png", 192],
  ["icon.svg", "icon-512.png", 512],
  ["maskable.svg", "maskable-512.png", 512],
  ["maskable.svg", "apple-touch-icon.png", 180], // iOS rounds the corners itself
  ["icon.svg", "favicon-32.png", 32],
];

const browser = await chromium.launch({
  executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  for (const [source, output, size] of TARGETS) {
    const svg = await Deno.readTextFile(new URL(source, ICONS));
    const page = await browser.newPage({ viewport: { width: size, height: size } });
    const dataUrl = `data:image/svg+xml;base64,${btoa(svg)}`;
    await page.setContent(
      `<html><body style="margin:0;background:transparent">` +
        `<img src="${dataUrl}" width="${size}" height="${size}" style="display:block"></body></html>`,
    );
    await page.waitForFunction("document.images[0].complete");
    await page.screenshot({ path: new URL(output, ICONS).pathname, omitBackground: true });
    await page.close();
    console.log(`${output} (${size}×${size})`);
  }
} finally {
  await browser.close();
}
