import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_PUSH_ORIGINS,
  healthcheckPort,
  loadConfig,
  withDevDefaults,
} from "../../config.ts";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

Deno.test("defaults follow the contract", () => {
  const c = loadConfig({ AUTH_MODE: "dev" });
  assert.equal(c.port, 8000);
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.databaseUrl, null);
  assert.equal(c.kvPath, "./data/blotter.kv");
  assert.equal(c.ingestToken, null);
  assert.equal(c.simulator, false);
  assert.equal(c.heartbeatMs, 15000);
  assert.equal(c.rateLimit, true);
  assert.deepEqual([...c.pushEndpointAllow], [...DEFAULT_PUSH_ORIGINS]);
  assert.ok(Object.isFrozen(c));
});

Deno.test("starting with no auth configured is refused, saying what to set", () => {
  const problems = problemsOf({});
  assert.equal(problems.length, 1);
  assert.match(problems[0], /AUTH_MODE.*AUTH_MODE=dev/);
});

Deno.test("a JWT key alone selects jwt mode", () => {
  assert.equal(loadConfig({ AUTH_JWT_SECRET: "x".repeat(32) }).auth.mode, "jwt");
  assert.match(problemsOf({ AUTH_MODE: "jwt" })[0], /jwt needs/);
});

Deno.test("every bad setting is reported at once, by name", () => {
  const problems = problemsOf({
    AUTH_MODE: "dev",
    PORT: "seventy",
    DATABASE_URL: "mysql://x",
    HEARTBEAT_MS: "-5",
    RATE_LIMIT: "maybe",
  });
  for (const name of ["PORT", "DATABASE_URL", "HEARTBEAT_MS", "RATE_LIMIT"]) {
    assert.ok(problems.some((p) => p.startsWith(name)), `${name} in ${problems}`);
  }
});

Deno.test("VAPID keys come in pairs and push origins must be origins", () => {
  const problems = problemsOf({
    AUTH_MODE: "dev",
    VAPID_PUBLIC_KEY: "abc",
    PUSH_ENDPOINT_ALLOW: "http://127.0.0.1:9,not an origin",
  });
  assert.ok(problems.some((p) => p.startsWith("VAPID")));
  assert.ok(problems.some((p) => p.includes('"not an origin"')));
  const ok = loadConfig({ AUTH_MODE: "dev", PUSH_ENDPOINT_ALLOW: "http://127.0.0.1:9" });
  assert.deepEqual([...ok.pushEndpointAllow], ["http://127.0.0.1:9"]);
});

Deno.test("deno task dev defaults AUTH_MODE=dev and SIMULATOR=on, unless the environment says", () => {
  assert.equal(loadConfig(withDevDefaults({})).auth.mode, "dev");
  assert.equal(loadConfig(withDevDefaults({})).simulator, true);
  assert.equal(loadConfig(withDevDefaults({ SIMULATOR: "off" })).simulator, false);
});

Deno.test("every bad setting is reported at once, the cross-setting ones included", () => {
  const problems = problemsOf({ PORT: "abc", VAPID_PUBLIC_KEY: "x", PUSH_ENDPOINT_ALLOW: "nope" });
  for (const name of ["PORT", "AUTH_MODE", "VAPID_PUBLIC_KEY", "PUSH_ENDPOINT_ALLOW"]) {
    assert.ok(problems.some((p) => p.startsWith(name)), `${name} in ${problems.join(" | ")}`);
  }
});

Deno.test("short secrets are accepted (no length in CONTRACT); an origin may end in /", () => {
  const c = loadConfig({
    AUTH_MODE: "jwt",
    AUTH_JWT_SECRET: "secret",
    INGEST_TOKEN: "tok",
    PUSH_ENDPOINT_ALLOW: "http://127.0.0.1:9999/, https://push.example",
  });
  assert.equal(c.ingestToken, "tok");
  assert.equal(c.auth.jwtSecret, "secret");
  assert.deepEqual([...c.pushEndpointAllow], ["http://127.0.0.1:9999", "https://push.example"]);
});

Deno.test("the health check asks the port the server listens on, and nothing else of the settings", () => {
  assert.equal(healthcheckPort({}), 8000);
  assert.equal(healthcheckPort({ PORT: "" }), 8000);
  assert.equal(healthcheckPort({ PORT: "9123", AUTH_MODE: "bogus" }), 9123);
  assert.equal(healthcheckPort({ PORT: "not a port" }), null);
  assert.equal(healthcheckPort({ PORT: "70000" }), null);
});

Deno.test("EVENT_BUS_URL: nats:// servers, and only with Postgres", () => {
  const pg = { AUTH_MODE: "dev", DATABASE_URL: "postgres://db/blotter" };
  assert.equal(loadConfig(pg).eventBusUrl, null);
  const two = "nats://n1:4222, nats://user:pass@n2:4222";
  assert.equal(loadConfig({ ...pg, EVENT_BUS_URL: two }).eventBusUrl, two);
  const badUrls = [
    "redis://n1:6379",
    "nats://",
    "n1:4222",
    "nats://n1:4222,,nats://n2",
    "nats://alice:s3cr/t@h:4222", // a "/" in a password must be written %2F
    "nats://n1:4222/path",
  ];
  for (const bad of badUrls) {
    assert.deepEqual(problemsOf({ ...pg, EVENT_BUS_URL: bad }), [
      "EVENT_BUS_URL: must be nats://HOST:PORT[,…]",
    ], bad);
  }
  assert.match(
    problemsOf({ AUTH_MODE: "dev", EVENT_BUS_URL: "nats://n1:4222" }).join(),
    /EVENT_BUS_URL: needs DATABASE_URL/,
  );
});
