import assert from "node:assert/strict";
import { parse } from "yaml";
import { ENV_NAMES, loadConfig } from "../../config.ts";
import { streamCapFor } from "../../server/descriptors.ts";

const root = new URL("../../", import.meta.url);
const dockerfile = await Deno.readTextFile(new URL("Dockerfile", root));
const compose = parse(await Deno.readTextFile(new URL("compose.yaml", root))) as {
  services: Record<string, {
    environment?: Record<string, string>;
    ports?: string[];
    ulimits?: { nofile?: { soft: number; hard: number } };
  }>;
};
const defaults = loadConfig({ AUTH_MODE: "dev" });

Deno.test("the Dockerfile exposes the port the server listens on by default", () => {
  assert.match(dockerfile, new RegExp(`^EXPOSE ${defaults.port}$`, "m"));
  assert.match(dockerfile, new RegExp(`PORT=${defaults.port}`));
  assert.match(dockerfile, /HOST=0\.0\.0\.0/);
});

Deno.test("the Dockerfile health check runs the binary's own healthcheck against /healthz", async () => {
  assert.match(dockerfile, /HEALTHCHECK .*\n?.*"\/app\/blotter", "healthcheck"/);
  const main = await Deno.readTextFile(new URL("main.ts", root));
  assert.match(main, /\/healthz/);
  const ops = await Deno.readTextFile(new URL("routes/ops.ts", root));
  assert.match(ops, /["']\/healthz["']/);
});

Deno.test("the image runs as a non-root user", () => {
  assert.match(dockerfile, /^USER nonroot$/m);
});

Deno.test("every environment name in Dockerfile and compose.yaml is one Blotter reads", () => {
  const names = new Set<string>();
  for (const m of dockerfile.matchAll(/^ENV ([\s\S]*?)(?:\n(?!\s))/gm)) {
    for (const pair of m[1].matchAll(/([A-Z_]+)=/g)) names.add(pair[1]);
  }
  const blotter = compose.services.blotter;
  for (const name of Object.keys(blotter.environment ?? {})) names.add(name);
  assert.ok(names.size >= 5, `found ${[...names]}`);
  for (const name of names) assert.ok(ENV_NAMES.includes(name), `${name} is not a Blotter setting`);
});

Deno.test("compose raises the open-file limit the stream cap is derived from", () => {
  const nofile = compose.services.blotter.ulimits?.nofile;
  assert.ok(nofile, "compose sets no nofile ulimit");
  // Under ~2,000 the derived MAX_STREAMS (server/descriptors.ts) is a few hundred streams.
  assert.ok(nofile.soft >= 2_048 && nofile.hard >= nofile.soft, `nofile ${JSON.stringify(nofile)}`);
  assert.ok(streamCapFor(nofile.soft) >= 1_000);
});

Deno.test("compose publishes the container port the config listens on", () => {
  const blotter = compose.services.blotter;
  const port = blotter.environment?.PORT;
  assert.equal(port, String(defaults.port));
  assert.ok(blotter.ports?.some((p) => p.endsWith(`:${port}`)));
});

Deno.test("the compiled executable embeds every file the server reads beside its code", () => {
  // Files the code opens relative to itself: new URL("…", import.meta.url), not modules.
  const needed = new Set<string>();
  // Top-level folders with their subfolders (store/pg/, …), and the root's own files.
  const sources = (dir: string, deep: boolean): string[] =>
    [...Deno.readDirSync(dir)].flatMap((e) =>
      e.isDirectory && deep ? sources(`${dir}/${e.name}`, true) : [`${dir}/${e.name}`]
    );
  for (const dir of ["routes", "store", "realtime", "auth", "views", "venue", "orders", "."]) {
    for (const file of sources(dir, dir !== ".")) {
      if (!/\.tsx?$/.test(file)) continue;
      const source = Deno.readTextFileSync(file);
      for (const m of source.matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)) {
        if (/\.tsx?$/.test(m[1])) continue;
        const resolved = new URL(m[1], new URL(file, "file:///r/")).pathname.slice(3);
        needed.add(resolved.replace(/\/$/, ""));
      }
    }
  }
  assert.ok(needed.has("static") && needed.has("store/schema.sql"), [...needed].join(", "));
  const dockerfile = Deno.readTextFileSync("Dockerfile");
  const task = JSON.parse(Deno.readTextFileSync("deno.json")).tasks.compile as string;
  for (const path of needed) {
    assert.ok(dockerfile.includes(`--include ${path}`), `Dockerfile does not embed ${path}`);
    assert.ok(task.includes(`--include ${path}`), `deno task compile does not embed ${path}`);
  }
});
