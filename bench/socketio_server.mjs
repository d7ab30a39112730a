// The Socket.IO baseline's server (bench/socketio.ts starts it): in memory, no persistence, no
// validation — one room per user, and POST /executions (a JSON array of reports whose order ids
// are "<user>:<n>") emits each report to its user's room. Plain JavaScript so it runs on Node (the
// usual home of Socket.IO: `node bench/socketio_server.mjs PORT`) as well as on Deno.
import { createServer } from "node:http";
import process from "node:process";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const http = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/executions") {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => body += chunk);
  req.on("end", () => {
    for (const r of JSON.parse(body)) {
      io.to(r.order_id.slice(0, r.order_id.indexOf(":"))).emit("execution", r);
    }
    res.writeHead(202, { "content-type": "application/json" }).end('{"accepted":true}');
  });
});
const io = new Server(http, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => socket.join(String(socket.handshake.auth.user)));
http.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
