// Deno.serve + Hono: parse the JSON body, answer 201 with c.json (what a Blotter route starts from).
import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.text("ok"));
app.post("/", async (c) => c.json({ ok: true, n: Object.keys(await c.req.json()).length }, 201));
Deno.serve({ port: Number(Deno.env.get("PORT")), hostname: "127.0.0.1", onListen() {} }, app.fetch);
