/**
 * The server's dependencies apart from the tools': deno.server.json (used by `deno task dev`,
 * `start`, `compile` and the image) lists only what the server imports, with its own lock, so
 * running the server fetches none of the packages only tests and benchmarks use. deno.json lists
 * both, for the tests, benchmarks and checks. These tests keep the two in step.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const readJson = async (path: string) =>
  JSON.parse(await Deno.readTextFile(new URL(path, ROOT))) as Record<string, unknown>;

const full = await readJson("deno.json");
const server = await readJson("deno.server.json");
const fullImports = full.imports as Record<string, string>;
const serverImports = server.imports as Record<string, string>;

/** Bare specifiers the server's source imports (not tests/, bench/, diagram/, scripts/, static/). */
async function serverBareImports(dir = ROOT, prefix = ""): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (/^(tests|bench|diagram|scripts|static|node_modules|data|\.)/.test(path)) continue;
    if (entry.isDirectory) {
      for (const [k, v] of await serverBareImports(new URL(path + "/", ROOT), path + "/")) {
        found.set(k, v);
      }
    } else if (/\.(ts|tsx)$/.test(path)) {
      const text = await Deno.readTextFile(new URL(path, ROOT));
      text.split("\n").forEach((line, i) => {
        for (const m of line.matchAll(/\bfrom\s*["']([^"'.][^"']*)["']/g)) {
          if (!m[1].startsWith("node:")) found.set(m[1], `${path}:${i + 1}`);
        }
      });
    }
  }
  return found;
}

Deno.test("the server's config pins each of its packages exactly as deno.json does", () => {
  for (const [name, specifier] of Object.entries(serverImports)) {
    assert.equal(fullImports[name], specifier, `deno.server.json ${name} differs from deno.json`);
  }
  assert.deepEqual(server.unstable, full.unstable);
  assert.deepEqual(server.compilerOptions, full.compilerOptions);
  assert.equal(server.lock, "deno.server.lock");
});

Deno.test("the server imports only packages its own config lists, and lists no other", async () => {
  const used = await serverBareImports();
  const packageOf = (specifier: string) =>
    Object.keys(serverImports).find((name) =>
      name.endsWith("/") ? specifier.startsWith(name) : specifier === name
    );
  for (const [specifier, where] of used) {
    assert.ok(
      packageOf(specifier),
      `${where}: imports "${specifier}", which deno.server.json does not list`,
    );
  }
  const usedPackages = new Set([...used.keys()].map(packageOf));
  for (const name of Object.keys(serverImports)) {
    if (name.endsWith("/")) continue; // "hono/" rides with "hono"
    assert.ok(
      usedPackages.has(name),
      `deno.server.json lists ${name}, which the server never imports`,
    );
  }
});

Deno.test("both lock files pin the server's packages to the same versions", async () => {
  const specifiers = async (path: string) =>
    (await readJson(path)).specifiers as Record<string, string>;
  const [fullLock, serverLock] = await Promise.all([
    specifiers("deno.lock"),
    specifiers("deno.server.lock"),
  ]);
  for (
    const specifier of new Set(
      Object.values(serverImports).map((s) => s.replace("npm:/", "npm:").replace(/\/$/, "")),
    )
  ) {
    assert.ok(serverLock[specifier], `deno.server.lock has no ${specifier}`);
    assert.equal(serverLock[specifier], fullLock[specifier], `the locks differ on ${specifier}`);
  }
});
