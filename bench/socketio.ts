/**
 * `deno task bench:socketio`: the yardstick. An in-memory Socket.IO server — the usual choice for
 * this job — doing the same per-user fan-out as Blotter with no persistence and no validation, under
 * the same load generator (bench/load.ts): clients joined to one room per user, execution reports
 * posted over HTTP in batches every 10 ms, latency from the stamp in each exec_id to the client.
 *
 *   deno task bench:socketio [--streams 5000] [--users 1000] [--rates 500,1000,...] [--seconds 20]
 *
 * The server (bench/socketio_server.mjs) runs as its own process, so its memory and CPU are its
 * own: on Node when `node` is installed (`--runtime deno` to compare), since that is where
 * Socket.IO usually runs. Clients use the websocket transport only (no long-polling upgrade).
 */
import { io as connect, type Socket } from "socket.io-client";
import { benchOptions, type Received, record, rssKb, runSteps, step } from "./load.ts";

await drive();

async function drive(): Promise<void> {
  const options = benchOptions();
  const { args, streams: STREAMS, users: USERS, rates: RATES, seconds: SECONDS } = options;
  const PORT = 19000 + Math.floor(Math.random() * 1000);
  const URL_ = `http://127.0.0.1:${PORT}`;

  const script = new URL("./socketio_server.mjs", import.meta.url).pathname;
  const runtime = args.runtime ?? (hasNode() ? "node" : "deno");
  const server = new Deno.Command(runtime === "node" ? "node" : Deno.execPath(), {
    args: runtime === "node" ? [script, String(PORT)] : ["run", "-A", script, String(PORT)],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const sockets: Socket[] = [];
  try {
    const out = server.stdout.getReader();
    await out.read(); // "listening"
    out.releaseLock();
    server.stdout.cancel();
    console.log(
      `Socket.IO baseline on ${runtime}: ${STREAMS} clients, ${USERS} users, rates ${RATES}`,
    );

    await new Promise((r) => setTimeout(r, 1000));
    const rssBefore = rssKb(server.pid);
    const received: Received = { latencies: [], count: 0 };
    for (let i = 0; i < STREAMS; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, STREAMS - i) }, (_, j) => {
        const socket = connect(URL_, {
          transports: ["websocket"],
          auth: { user: `u${(i + j) % USERS}` },
          reconnection: false,
        });
        sockets.push(socket);
        socket.on("execution", (r: { exec_id: string }) => record(received, `"${r.exec_id}"`));
        return new Promise((resolve, reject) => {
          socket.once("connect", () => resolve(null));
          socket.once("connect_error", reject);
        });
      }));
    }
    await new Promise((r) => setTimeout(r, 3000));
    const rssIdle = rssKb(server.pid);

    await runSteps({
      ...options,
      rssBefore,
      rssIdle,
      extra: { server_runtime: runtime },
      run: (rate) =>
        step({
          rate,
          seconds: SECONDS,
          fanout: STREAMS / USERS,
          serverPid: server.pid,
          received,
          report: (i, exec_id, at) => ({
            order_id: `u${i % USERS}:1`,
            exec_id,
            type: "partial_fill",
            at,
            last_qty: "1",
            last_price: "187.50",
          }),
          send: async (batch) => {
            const res = await fetch(`${URL_}/executions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(batch),
            });
            await res.body?.cancel();
          },
        }),
    });
  } finally {
    for (const s of sockets) s.disconnect();
    server.kill("SIGTERM");
    await server.status;
  }
}

function hasNode(): boolean {
  try {
    return new Deno.Command("node", { args: ["--version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
