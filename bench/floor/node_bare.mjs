// The floor of an HTTP POST on node:http (Node's own, or Deno's): read the body, answer 201.
import { createServer } from "node:http";
createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    res.writeHead(201, { "content-type": "application/json", "content-length": "11" });
    res.end('{"ok":true}');
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
