import assert from "node:assert/strict";
import type { OrderEvent } from "../../orders/model.ts";
import { batchFrames, encodeSse, SharedFrames, sseFrame } from "../../realtime/sse_frame.ts";

Deno.test("an event is id, event and one data line, ended by a blank line", () => {
  assert.equal(
    sseFrame({ id: 7, event: "order", data: '{"seq":7}' }),
    'id: 7\nevent: order\ndata: {"seq":7}\n\n',
  );
});

Deno.test("the retry hint and the heartbeat are messages of their own", () => {
  assert.equal(sseFrame({ retry: 1000 }), "retry: 1000\n\n");
  assert.equal(sseFrame({ comment: "ping" }), ": ping\n\n");
});

Deno.test("an unnamed message (htmx swaps these) has no event line", () => {
  assert.equal(sseFrame({ id: 3, data: "<tr></tr>" }), "id: 3\ndata: <tr></tr>\n\n");
  assert.equal(sseFrame({ event: "", data: "x" }), "data: x\n\n");
});

Deno.test("multi-line data becomes one data line per line, whatever the line break", () => {
  assert.equal(sseFrame({ data: "a\nb\r\nc\rd" }), "data: a\ndata: b\ndata: c\ndata: d\n\n");
  assert.equal(sseFrame({ data: "" }), "data: \n\n");
  // A payload cannot end the message early or smuggle in a field of its own.
  assert.equal(sseFrame({ data: "x\n\nid: 99" }), "data: x\ndata: \ndata: id: 99\n\n");
});

Deno.test("CR, LF or NUL in an id or an event name is refused as a programming error", () => {
  for (const bad of ["a\nb", "a\rb", "a\r\nb", "a\0b"]) {
    assert.throws(() => sseFrame({ id: bad, data: "x" }), TypeError, `id ${JSON.stringify(bad)}`);
    assert.throws(() => sseFrame({ event: bad, data: "x" }), TypeError, JSON.stringify(bad));
  }
});

Deno.test("a retry that is not a non-negative integer, or an empty message, is refused", () => {
  for (const bad of [-1, 1.5, NaN, Infinity]) assert.throws(() => sseFrame({ retry: bad }));
  assert.throws(() => sseFrame({}), TypeError);
});

Deno.test("several messages encode to their UTF-8 bytes back to back", () => {
  const bytes = encodeSse({ event: "status", data: "{}" }, { data: "é" });
  assert.equal(new TextDecoder().decode(bytes), "event: status\ndata: {}\n\ndata: é\n\n");
});

const event = (seq: number): OrderEvent => ({ seq } as unknown as OrderEvent);

Deno.test("within one publish an event's frame is built once and shared, per format", () => {
  const shared = new SharedFrames();
  const [json, other] = [{}, {}];
  let builds = 0;
  const build = (e: OrderEvent) => (builds++, { id: e.seq, event: "order", data: "{}" });
  const e = event(1);
  const first = shared.event(json, e, build);
  assert.equal(shared.event(json, e, build), first);
  assert.equal(builds, 1);
  assert.notEqual(shared.event(json, event(1), build), first, "another event is its own entry");
  shared.event(other, e, build);
  assert.equal(builds, 3, "another format frames the event its own way");
  assert.equal(new TextDecoder().decode(first), "id: 1\nevent: order\ndata: {}\n\n");
});

Deno.test("a batch's frame is shared only by a batch of the very same events", () => {
  const cache = batchFrames();
  let builds = 0;
  const build = (es: OrderEvent[]) => (builds++, { id: es[es.length - 1].seq, data: "x" });
  const [a, b, c] = [event(1), event(2), event(3)];
  const ab = cache.batch([a, b], build);
  assert.equal(cache.batch([a, b], build), ab);
  assert.equal(builds, 1);
  cache.batch([b], build); // same last event, different batch
  cache.batch([c, b], build);
  assert.equal(builds, 3);
  assert.equal(new TextDecoder().decode(ab), "id: 2\ndata: x\n\n");
});

/** A string literal that starts an SSE field line, or the heartbeat, written by hand. */
const HAND_WRITTEN_FRAME = /[`"'](?:id|event|data|retry): [^`"'\n]*\\n|[`"']: ping\\n/;

/** Source files of the floors that send streams (everything but the writer itself). */
async function streamingSources(): Promise<string[]> {
  const root = new URL("../../", import.meta.url);
  const files: string[] = [];
  for (const dir of ["realtime", "routes", "views"]) {
    for await (const entry of Deno.readDir(new URL(`${dir}/`, root))) {
      if (entry.isFile && /\.tsx?$/.test(entry.name)) files.push(`${dir}/${entry.name}`);
    }
  }
  return files.filter((f) => f !== "realtime/sse_frame.ts").sort();
}

Deno.test("no module but realtime/sse_frame.ts writes SSE frames by hand", async () => {
  const root = new URL("../../", import.meta.url);
  const files = await streamingSources();
  assert.ok(files.includes("realtime/sse.ts") && files.includes("routes/stream.ts"), "scanned");
  const offenders: string[] = [];
  for (const file of files) {
    const lines = (await Deno.readTextFile(new URL(file, root))).split("\n");
    lines.forEach((line, i) => {
      if (HAND_WRITTEN_FRAME.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, [], "build frames with sseFrame/encodeSse instead");
});

Deno.test("the hand-written-frame check recognises the frames it forbids", () => {
  for (
    const line of [
      "out += `id: ${msg.id}\\n`;",
      "renderStatus: (s) => `event: status\\ndata: ${body}\\n\\n`,",
      'this.#write(": ping\\n\\n");',
      "this.#write(`retry: ${ms}\\n\\n`);",
    ]
  ) assert.ok(HAND_WRITTEN_FRAME.test(line), line);
  // Prose about the format (the OpenAPI description) is not a frame.
  assert.ok(
    !HAND_WRITTEN_FRAME.test('"Each message: `id: SEQ`, `event: order`. `: ping` comments"'),
  );
});
