// The floor of an idle SSE stream on Deno.serve: a ReadableStream body held open, one comment
// written. GET /gc runs a full GC (for the memory reading); anything else opens a stream.
const keep = new Set<ReadableStreamDefaultController<Uint8Array>>();
const hello = new TextEncoder().encode(": hello\n\n");
Deno.serve({ port: Number(Deno.env.get("PORT")), hostname: "127.0.0.1", onListen() {} }, (req) => {
  if (new URL(req.url).pathname === "/gc") {
    (globalThis as unknown as { gc?: () => void }).gc?.();
    return new Response("ok");
  }
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
