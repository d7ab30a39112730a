// The floor of an HTTP POST on Deno.serve: read the body, answer 201 with a small JSON body.
const port = Number(Deno.env.get("PORT"));
Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, async (req) => {
  if (req.method === "POST") await req.text();
  return new Response('{"ok":true}', {
    status: 201,
    headers: { "content-type": "application/json" },
  });
});
