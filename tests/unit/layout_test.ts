/**
 * The shape of the house, checked so it lasts: every relative import in the source points down
 * (DESIGN.md "Layout"), and no source file grows past MAX_LINES. Each failure names file:line.
 * Source is every .ts/.tsx/.js/.mjs file outside the tools (tests/, bench/), static/vendor/ (copied
 * from npm), node_modules/ and data/. Stylesheets are not counted: they have no imports and read
 * top to bottom.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** A source file longer than this is split, or listed below with the reason it is not. */
const MAX_LINES = 300;

/**
 * The floors, top to bottom: each module (a top-level folder, or a top-level file) and the modules
 * it may import. Imports inside one module are always allowed. Where the top-level files sit:
 * - main.ts is the roof: it wires every floor and nothing imports it.
 * - server/ (the HTTP server and its adapters) sits beside main.ts: it takes an app and serves it.
 * - config.ts and log.ts are on the ground floor beside orders/: every floor may use the settings
 *   and the logger, except views/ (pure markup from orders/ types) and orders/ (imports nothing).
 *   config_native.ts (the FCM/APNs settings) is config.ts's own part, below it.
 */
const FLOORS: Record<string, readonly string[]> = {
  "main.ts": [
    "server",
    "routes",
    "realtime",
    "venue",
    "auth",
    "views",
    "store",
    "orders",
    "config.ts",
    "log.ts",
  ],
  server: ["config.ts", "log.ts"],
  routes: ["realtime", "venue", "auth", "views", "store", "orders", "config.ts", "log.ts"],
  realtime: ["store", "orders", "config.ts", "log.ts"],
  venue: ["store", "orders", "config.ts", "log.ts"],
  auth: ["store", "orders", "config.ts", "log.ts"],
  views: ["orders"],
  store: ["orders", "config.ts", "log.ts"],
  orders: [],
  "config.ts": ["config_native.ts"],
  "config_native.ts": [],
  "log.ts": [],
  // Tooling and browser files: they import nothing of the server.
  diagram: [],
  // The client library is its own package: it imports nothing of the server.
  client: [],
  scripts: [],
  static: [],
};

/**
 * Files allowed past MAX_LINES, each with why. An entry whose file has come under the limit
 * fails the test, so the list only shrinks.
 */
const LONG_FILES_ALLOWED: Record<string, string> = {
  "orders/lifecycle.ts": "the state machine reads best whole: the transition table beside every " +
    "transition it allows",
  "routes/openapi.ts": "one document, kept whole so it reads like the API it describes " +
    "(docs/tech-choices.md, OpenAPI)",
};

/** Folders that are not source (tools, vendored copies, generated or local data). */
const SKIP = [/^tests\//, /^bench\//, /^static\/vendor\//, /^node_modules\//, /^data\//, /^\./];
const SOURCE = /\.(ts|tsx|js|mjs)$/;
/** A relative specifier on an import or re-export line, static or dynamic. */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;

async function sourceFiles(dir = ROOT, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name + (entry.isDirectory ? "/" : "");
    if (SKIP.some((re) => re.test(path))) continue;
    if (entry.isDirectory) files.push(...await sourceFiles(new URL(path, ROOT), path));
    else if (entry.isFile && SOURCE.test(path)) files.push(path);
  }
  return files.sort();
}

/** The module a repo-relative path belongs to: its top-level folder, or the file itself. */
function moduleOf(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

/** Every relative import of a file, as [line number, repo-relative target]. */
function relativeImports(path: string, text: string): [number, string][] {
  const found: [number, string][] = [];
  text.split("\n").forEach((line, i) => {
    const code = line.trimStart();
    if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) return;
    for (const m of line.matchAll(IMPORT)) {
      const target = new URL(m[1], new URL(path, ROOT)).href;
      found.push([i + 1, target.startsWith(ROOT.href) ? target.slice(ROOT.href.length) : target]);
    }
  });
  return found;
}

/** What is wrong with the tree: one line per offence, naming file:line. */
async function layoutProblems(): Promise<string[]> {
  const problems: string[] = [];
  for (const path of await sourceFiles()) {
    const text = await Deno.readTextFile(new URL(path, ROOT));
    const from = moduleOf(path);
    const allowed = FLOORS[from];
    if (!allowed) {
      problems.push(`${path}:1: "${from}" is on no floor; add it to FLOORS in this test`);
      continue;
    }
    for (const [line, target] of relativeImports(path, text)) {
      const to = moduleOf(target);
      if (to === from || allowed.includes(to)) continue;
      const rule = allowed.length
        ? `${from} may import only ${allowed.join(", ")}`
        : `${from} imports nothing of the app`;
      problems.push(`${path}:${line}: imports ${target}, but ${rule} (imports point down)`);
    }
    const lines = text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length;
    const reason = LONG_FILES_ALLOWED[path];
    if (lines > MAX_LINES && !reason) {
      problems.push(
        `${path}:${MAX_LINES + 1}: ${lines} lines, over ${MAX_LINES}; split it by concern`,
      );
    }
    if (lines <= MAX_LINES && reason) {
      problems.push(`${path}:1: ${lines} lines now; take it off LONG_FILES_ALLOWED`);
    }
  }
  for (const path of Object.keys(LONG_FILES_ALLOWED)) {
    try {
      await Deno.stat(new URL(path, ROOT));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      problems.push(`${path}: gone; take it off LONG_FILES_ALLOWED`);
    }
  }
  return problems;
}

Deno.test("imports point down the house and no source file grows past the limit", async () => {
  const problems = await layoutProblems();
  assert.deepEqual(problems, [], `\n${problems.join("\n")}\n`);
});

Deno.test("the layout check sees the whole source tree", async () => {
  // Guards the check itself: a walk that found nothing would pass vacuously.
  const files = await sourceFiles();
  for (const expected of ["main.ts", "config.ts", "routes/app.ts", "store/store.ts"]) {
    assert.ok(files.includes(expected), `${expected} not found by the walk`);
  }
  assert.ok(!files.some((f) => f.startsWith("tests/") || f.startsWith("static/vendor/")));
  const imports = relativeImports("main.ts", await Deno.readTextFile(new URL("main.ts", ROOT)));
  assert.ok(imports.some(([, target]) => target === "routes/app.ts"));
});
