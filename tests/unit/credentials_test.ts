/**
 * Credentials never reach the log: a URL's user-info is taken out of every logged text (a
 * driver may repeat DATABASE_URL in its error), and where Blotter names its database it names
 * only hosts and the database.
 */
import assert from "node:assert/strict";
import { createLogger, withoutCredentials } from "../../log.ts";
import { databaseWhere } from "../../store/open.ts";

Deno.test("withoutCredentials: any URL's user and password, wherever they stand", () => {
  assert.equal(
    withoutCredentials("Invalid URL: 'postgres://blotter:s3cret@db:54x2/blotter'"),
    "Invalid URL: 'postgres://…@db:54x2/blotter'",
  );
  assert.equal(withoutCredentials("nats://u:p@ss@h:4222 down"), "nats://…@h:4222 down");
  assert.equal(
    withoutCredentials("postgres://h1:5432,h2:5432/db"),
    "postgres://h1:5432,h2:5432/db",
  );
  assert.equal(withoutCredentials("no url here"), "no url here");
});

Deno.test("databaseWhere: hosts and database only, even with an @ in the password", () => {
  assert.equal(databaseWhere("postgres://u:p@ss@127.0.0.1:1/blotter"), "127.0.0.1:1/blotter");
  assert.equal(databaseWhere("postgresql://u:pw@db/blotter?sslmode=require"), "db/blotter");
  assert.equal(databaseWhere("postgres://h1:5432,h2:5432/db"), "h1:5432,h2:5432/db");
  assert.equal(databaseWhere("postgres:///db"), "localhost/db");
});

Deno.test("the logger takes credentials out of messages and fields", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    const log = createLogger("info");
    log.error("Blotter cannot start: postgres://a:hunter2@db/x", {
      err: new Error("connect postgres://a:hunter2@db/x"),
      note: "see postgres://a:hunter2@db/x",
    });
  } finally {
    console.error = original;
  }
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0], /hunter2/);
  assert.match(lines[0], /postgres:\/\/…@db\/x/);
});
