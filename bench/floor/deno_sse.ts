// The floor of an idle SSE stream on Deno.serve: a ReadableStream body held open, one comment
// written. GET /gc runs a full GC (for the memory reading) and answers the heap's figures;
// GET /plain answers at once (a keep-alive connection with nothing in flight); anything else
// opens a stream.
const keep = new Set<ReadableStreamDefaultController<Uint8Array>>();
const hello = new TextEncoder().encode(": hello\n\n");
Deno.serve({ port: Number(Deno.env.get("PORT")), hostname: "127.0.0.1", onListen() {} }, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/gc") {
    (globalThis as unknown as { gc?: () => void }).gc?.();
    return new Response(JSON.stringify(Deno.memoryUsage()));
  }
  if (path === "/plain") return new Response("ok");
  let controller: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      keep.add(c);
      c.enqueue(hello);
    },
    cancel() {
      keep.delete(controller);
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
});
