// The Socket.IO yardstick's server (bench/targets.ts starts it, pinned to CPU 0): in memory, no
// persistence, no validation — one room per user, and POST /executions (one report, or a JSON
// array of them, whose order ids are "<user>:<n>") emits each report to its user's room and
// answers 201. GET /healthz answers 200 once listening. Plain JavaScript so it runs on Node (the
// usual home of Socket.IO: `node bench/socketio_server.mjs PORT`) as well as on Deno.
import { createServer } from "node:http";
import process from "node:process";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const emit = (r) => io.to(r.order_id.slice(0, r.order_id.indexOf(":"))).emit("execution", r);
const http = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200).end("ok");
    return;
  }
  if (req.method !== "POST" || req.url !== "/executions") {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => body += chunk);
  req.on("end", () => {
    const reports = JSON.parse(body);
    if (Array.isArray(reports)) {
      reports.forEach(emit);
      const results = reports.map(() => ({ status: 201 }));
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results }));
    } else {
      emit(reports);
      res.writeHead(201, { "content-type": "application/json" }).end('{"accepted":true}');
    }
  });
});
const io = new Server(http, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => socket.join(String(socket.handshake.auth.user)));
http.listen(port, "127.0.0.1");
