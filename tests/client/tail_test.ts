/** `deno task tail`, the terminal blotter on the client library, against a real server. */
import assert from "node:assert/strict";
import { api, eventually, INGEST_TOKEN, login, startServer } from "../helpers.ts";

Deno.test("deno task tail: the list, the connection's state, and each change as it happens", async () => {
  const server = await startServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "tail", "--url", server.url, "--user", "tia"],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
  })();
  try {
    await eventually(() => out.includes("[live]"), 20_000);
    assert.match(out, /reloaded \(start\): 0 orders/);
    const { token } = await login(server.url, "tia");
    const placed = await api(server.url, token, "POST", "/api/v1/orders", {
      symbol: "AAPL",
      asset_class: "stock",
      side: "buy",
      qty: "10",
    });
    await api(server.url, INGEST_TOKEN, "POST", "/api/v1/executions", {
      order_id: placed.json.id,
      exec_id: "t-1",
      type: "new",
      at: new Date().toISOString(),
    });
    await eventually(() => /\b2 new\s+AAPL\s+buy\s+10\s+new\b/.test(out));
    assert.match(out, /\b1 pending_new\s+AAPL/);
  } finally {
    child.kill("SIGINT");
    await child.status;
    await reading;
    await server.stop();
  }
});
