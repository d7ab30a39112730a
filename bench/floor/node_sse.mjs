// The floor of an idle SSE stream on node:http (Node's own, or Deno's): res.write of one comment,
// held open. GET /gc runs a full GC when run with --expose-gc (on Deno: --v8-flags=--expose-gc)
// and answers the heap's figures.
import { createServer } from "node:http";
const keep = new Set();
createServer((req, res) => {
  if (req.url === "/gc") {
    globalThis.gc?.();
    res.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write(": hello\n\n");
  keep.add(res);
  res.on("close", () => keep.delete(res));
}).listen(Number(process.env.PORT), "127.0.0.1");
