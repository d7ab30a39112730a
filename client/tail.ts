/**
 * `deno task tail`: a terminal blotter on the client library — its worked example, and an
 * operator's tool. It prints the user's orders, then one line per change as it happens, the
 * connection's state, and each reload with its reason.
 *
 *   deno task tail --url http://127.0.0.1:8000 --user alice      (AUTH_MODE=dev: signs in)
 *   deno task tail --url https://blotter.example --token "$JWT"
 */
import { parseArgs } from "node:util";
import { BlotterClient, type Order } from "./src/index.ts";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    token: { type: "string" },
    user: { type: "string" },
    transport: { type: "string", default: "auto" },
  },
});
const baseUrl = values.url!.replace(/\/$/, "");

/** The token: given, or a dev-mode session for `--user`. */
async function token(): Promise<string> {
  if (values.token) return values.token;
  if (!values.user) {
    console.error("say who: --token TOKEN, or --user NAME against a server in AUTH_MODE=dev");
    Deno.exit(2);
  }
  const res = await fetch(`${baseUrl}/api/v1/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: values.user }),
  });
  if (!res.ok) {
    console.error(`sign-in refused: ${res.status} ${await res.text()}`);
    Deno.exit(1);
  }
  return (await res.json()).token;
}

const time = () => new Date().toISOString().slice(11, 23);

/** One order as a row: symbol, side, size, status, fills. */
function row(o: Order): string {
  const size = o.qty ?? `$${o.notional}`;
  const fills = o.filled_qty === "0" ? "" : ` filled ${o.filled_qty} @ ${o.filled_avg_price}`;
  return `${o.symbol.padEnd(8)} ${o.side.padEnd(4)} ${size.padStart(12)}  ` +
    `${o.status.padEnd(16)}${fills}  ${o.id.slice(0, 8)}`;
}

const client = new BlotterClient({
  baseUrl,
  token: await token(),
  transport: values.transport as "auto",
});
client.on("state", (s) => console.log(`${time()}  [${s}]`));
client.on("reload", (why) => {
  console.log(`${time()}  reloaded (${why}): ${client.orders().length} orders`);
  for (const o of client.orders().slice(0, 20)) console.log(`              ${row(o)}`);
});
client.on("order", (o, e) => {
  if (e) console.log(`${time()}  ${String(e.seq).padStart(5)} ${e.type.padEnd(14)} ${row(o)}`);
});
Deno.addSignalListener("SIGINT", async () => {
  await client.stop();
  Deno.exit(0);
});
await client.start();
