/**
 * What each idle connection keeps alive in the server's JS heap, by constructor: a heap snapshot
 * (through the V8 inspector) with no device connected and one with N connected, the difference
 * counted per object kind and divided by N. It tells which objects are Blotter's own (an
 * EventStream, its closures, the hub's Set entries, a timer) and which are the runtime's (a
 * Request, a ReadableStream, a WebSocket), and how many bytes of each a connection costs. The
 * native memory outside the JS heap (Deno.serve's buffers, the socket) does not show here: RSS
 * per connection (bench/idle.ts) is the whole.
 *
 *   deno run -A --node-modules-dir=auto bench/heap_census.ts [--transport sse|ws] [--streams 2000]
 *     [--top 40]
 */
import { parseArgs } from "node:util";
import { startBlotter } from "./targets.ts";

/** Object kind (node type and name) → count and self size, from one heap snapshot. */
type Census = Map<string, { count: number; bytes: number }>;

/** One heap snapshot: its census, its node ids, and who holds the nodes of given kinds. */
interface Snapshot {
  census: Census;
  ids: Set<number>;
  /** For each node of a kind asked for: its id and its holders ("kind .edge"). */
  held: Map<string, Array<{ id: number; by: string[] }>>;
}

/** Takes a heap snapshot through the inspector at `port` and counts it by kind. */
async function snapshot(port: number, holdersOf: string[]): Promise<Snapshot> {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const chunks: string[] = [];
  const done = new Promise<void>((resolve) => {
    ws.onmessage = (e) => {
      const msg = JSON.parse(String(e.data));
      if (msg.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(msg.params.chunk);
      else if (msg.id === 2) resolve();
    };
  });
  // A full GC first, so that only what is alive is counted (the snapshot also collects).
  ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
  ws.send(JSON.stringify({ id: 2, method: "HeapProfiler.takeHeapSnapshot" }));
  await done;
  ws.close();
  const snap = JSON.parse(chunks.join(""));
  const fields: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const edgeFields: string[] = snap.snapshot.meta.edge_fields;
  const edgeTypes: string[] = snap.snapshot.meta.edge_types[0];
  const [T, N, I, S, E] = ["type", "name", "id", "self_size", "edge_count"].map((f) =>
    fields.indexOf(f)
  );
  const [ET, EN, ETO] = ["type", "name_or_index", "to_node"].map((f) => edgeFields.indexOf(f));
  const keyOf = (i: number) => {
    const type = types[snap.nodes[i + T]];
    let name: string = snap.strings[snap.nodes[i + N]];
    // Strings and code are counted by type alone (their "name" is their content or source).
    if (type !== "object" && type !== "closure" && type !== "native") name = "";
    if (type === "closure") name = name || "(anonymous)";
    return `${type} ${name}`.trim();
  };
  const out: Census = new Map();
  const ids = new Set<number>();
  const wanted = new Set(holdersOf);
  const held = new Map<string, Array<{ id: number; by: string[] }>>();
  const byNode = new Map<number, { id: number; by: string[] }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const key = keyOf(i);
    const c = out.get(key) ?? { count: 0, bytes: 0 };
    c.count++;
    c.bytes += snap.nodes[i + S];
    out.set(key, c);
    ids.add(snap.nodes[i + I]);
    if (wanted.has(key)) {
      const entry = { id: snap.nodes[i + I], by: [] };
      byNode.set(i, entry);
      if (!held.has(key)) held.set(key, []);
      held.get(key)!.push(entry);
    }
  }
  if (byNode.size > 0) {
    for (let i = 0, e = 0; i < snap.nodes.length; i += fields.length) {
      for (let k = 0; k < snap.nodes[i + E]; k++, e += edgeFields.length) {
        const entry = byNode.get(snap.edges[e + ETO]);
        if (!entry || edgeTypes[snap.edges[e + ET]] === "weak") continue;
        const name = snap.edges[e + EN];
        const edge = typeof name === "number" && edgeTypes[snap.edges[e + ET]] !== "property" &&
            edgeTypes[snap.edges[e + ET]] !== "context" &&
            edgeTypes[snap.edges[e + ET]] !== "internal"
          ? `[${name}]`
          : snap.strings[name];
        entry.by.push(`${keyOf(i)} .${edge}`);
      }
    }
  }
  return { census: out, ids, held };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      transport: { type: "string", default: "sse" },
      streams: { type: "string", default: "2000" },
      top: { type: "string", default: "40" },
      holders: { type: "string", default: "" },
    },
  });
  const n = Number(values.streams);
  const kvDir = await Deno.makeTempDir({ prefix: "blotter-census-" });
  const target = await startBlotter({
    store: "kv",
    transport: values.transport === "ws" ? "ws" : "sse",
    kvDir,
    users: Math.ceil(n / 2),
    devicesPerUser: 2,
    gc: true,
  });
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const holdersOf = values.holders ? values.holders.split(";") : [];
    const first = await snapshot(target.inspectPort!, []);
    const before = first.census;
    const beforeIds = first.ids;
    const streams = await target.openStreams({ current: null });
    await new Promise((r) => setTimeout(r, 3000));
    const snap = await snapshot(target.inspectPort!, holdersOf);
    const after = snap.census;
    const open = streams.count();
    const rows = [...after].map(([key, a]) => {
      const b = before.get(key) ?? { count: 0, bytes: 0 };
      return { key, per: (a.count - b.count) / open, bytes: (a.bytes - b.bytes) / open };
    }).filter((r) => Math.abs(r.bytes) >= 1).sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((s, r) => s + r.bytes, 0);
    const objects = rows.reduce((s, r) => s + r.per, 0);
    console.log(
      `${values.transport}: ${open} open; JS heap per connection ${total.toFixed(0)} B in ` +
        `${objects.toFixed(0)} objects`,
    );
    console.log("| per connection: objects | bytes | kind |");
    console.log("| ---: | ---: | --- |");
    for (const r of rows.slice(0, Number(values.top))) {
      console.log(`| ${r.per.toFixed(2)} | ${r.bytes.toFixed(0)} | ${r.key} |`);
    }
    // Who holds the new objects of each kind asked for (--holders "object Object;array").
    for (const [key, nodes] of snap.held) {
      const fresh = nodes.filter((x) => !beforeIds.has(x.id));
      const hist = new Map<string, number>();
      for (const x of fresh) for (const h of new Set(x.by)) hist.set(h, (hist.get(h) ?? 0) + 1);
      console.log(`\n${key}: ${fresh.length} new; held by (per connection):`);
      for (const [h, c] of [...hist].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
        console.log(`  ${(c / open).toFixed(2)}  ${h}`);
      }
    }
    streams.close();
  } finally {
    await target.stop();
    await Deno.remove(kvDir, { recursive: true });
  }
}
