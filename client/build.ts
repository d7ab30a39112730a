/**
 * `deno task client:build`: the client library as an npm package in client/dist/ (build output,
 * not committed) — index.js (ESM, minified, no dependencies), index.d.ts, package.json.
 */
const root = new URL("./", import.meta.url);
const dist = new URL("dist/", root);
await Deno.remove(dist, { recursive: true }).catch(() => {});
const bundled = await new Deno.Command(Deno.execPath(), {
  args: [
    ...["bundle", "--platform", "browser", "--format", "esm", "--minify", "--declaration"],
    ...["--outdir", dist.pathname, new URL("src/index.ts", root).pathname],
  ],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!bundled.success) Deno.exit(1);
const pkg = {
  name: "@blotter/client",
  version: "0.1.0",
  description: "Live, exact order updates from Blotter: app socket, SSE or polling, with resume",
  type: "module",
  main: "./index.js",
  types: "./index.d.ts",
  exports: { ".": { types: "./index.d.ts", import: "./index.js", default: "./index.js" } },
  files: ["index.js", "index.d.ts"],
  sideEffects: false,
  engines: { node: ">=20" },
  license: "UNLICENSED",
};
await Deno.writeTextFile(new URL("package.json", dist), JSON.stringify(pkg, null, 2) + "\n");
const js = await Deno.readFile(new URL("index.js", dist));
const gz = await new Response(
  new Blob([js]).stream().pipeThrough(new CompressionStream("gzip")),
).arrayBuffer();
console.log(`client/dist: index.js ${js.length} bytes, ${gz.byteLength} gzipped`);
