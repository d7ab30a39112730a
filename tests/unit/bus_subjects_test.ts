import assert from "node:assert/strict";
import { busServers, busWhere, subjectToken } from "../../store/pg/bus_subjects.ts";

Deno.test("bus: credentials in EVENT_BUS_URL become client options, never a server address", () => {
  assert.deepEqual(busServers("nats://alice:p%40ss@h1:4223, nats://alice:p%40ss@h2"), {
    servers: ["h1:4223", "h2:4222"],
    user: "alice",
    pass: "p@ss",
  });
  assert.deepEqual(busServers("nats://s3cr3t-token@h1:4222"), {
    servers: ["h1:4222"],
    token: "s3cr3t-token",
  });
  assert.deepEqual(busServers("nats://127.0.0.1:4222"), { servers: ["127.0.0.1:4222"] });
});

Deno.test("bus: a log line names hosts only", () => {
  for (
    const url of ["nats://alice:p%40ss@h1:4223,nats://h2:4222", "nats://tok@h1:4223,nats://h2"]
  ) {
    const where = busWhere(url);
    assert.equal(where, "h1:4223,h2:4222");
    assert.ok(!/alice|ss|tok/.test(where), where);
  }
  assert.equal(busWhere("nats://alice:s3cr/t@h:4222"), "the event bus");
});

Deno.test("bus: a user's subject token is the id when plain, else an encoding no plain id has", () => {
  assert.equal(subjectToken("user-42_a"), "user-42_a");
  const dotted = subjectToken("a.b");
  const wild = subjectToken("a*>");
  assert.match(dotted, /^~[A-Za-z0-9_-]+$/);
  assert.notEqual(dotted, wild);
  assert.notEqual(subjectToken("ü"), subjectToken("u"));
  assert.match(subjectToken("x".repeat(300)), /^~/);
});
