/**
 * Renders diagram/architecture.mmd to diagram/architecture.svg in headless Chromium with the
 * mermaid npm package (fetched with `npm pack`, never a CDN). Run: deno task diagram.
 */
import { chromium } from "playwright-core";

const MERMAID_VERSION = "12.3.0";
const here = new URL(".", import.meta.url);

const dir = await Deno.makeTempDir();
try {
  const pack = await new Deno.Command("npm", {
    args: ["pack", `mermaid@${MERMAID_VERSION}`, "--silent"],
    cwd: dir,
  }).output();
  if (!pack.success) throw new Error(new TextDecoder().decode(pack.stderr));
  const tarball = new TextDecoder().decode(pack.stdout).trim().split("\n").pop()!;
  await new Deno.Command("tar", { args: ["xzf", tarball], cwd: dir }).output();
  const mermaidJs = await Deno.readTextFile(`${dir}/package/dist/mermaid.min.js`);
  const source = await Deno.readTextFile(new URL("architecture.mmd", here));

  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  const page = await browser.newPage();
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ content: mermaidJs });
  const svg = await page.evaluate(async (src: string) => {
    // deno-lint-ignore no-explicit-any
    const mermaid = (globalThis as any).mermaid;
    mermaid.initialize({ startOnLoad: false, theme: "neutral", htmlLabels: false });
    return (await mermaid.render("architecture", src)).svg as string;
  }, source);
  await browser.close();
  const out = new URL("architecture.svg", here);
  await Deno.writeTextFile(out, svg + "\n");
  // As `deno fmt --check` (CI) wants it, so a render never fails CI by itself.
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", out.pathname] })
    .output();
  if (!fmt.success) throw new Error(new TextDecoder().decode(fmt.stderr));
  console.log(`wrote diagram/architecture.svg (${svg.length} bytes)`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
