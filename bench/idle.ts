/**
 * Idle connections at the most one instance holds on this box (issue 25): Blotter on KV with N
 * devices on the JSON stream (`kv`) and on the app socket (`kv-ws`), read the way bench/README.md
 * says, plus what N idle connections cost over time:
 * - RSS per connection: RSS with N open minus RSS with none (users made, both after a full GC),
 *   over N (the ladder's idle line);
 * - heartbeat CPU: the server's CPU per second over `--idle-seconds` with none open, then with N
 *   open and idle (/proc/PID/stat; the default HEARTBEAT_MS, 15 s, so two intervals in 30 s);
 * - GC pauses: the server runs with `--trace-gc`; every collection is tallied per phase (idle,
 *   warm-up, the load step) by kind, with its main-thread pause and, for incremental marking, its
 *   steps apart (bench/gc_trace.ts), and the step's collections are listed in order to line up
 *   with its p99 by second;
 * - delivery p50/p99 at `--rate` reports/s to those N connections (the ladder's one step).
 *
 *   deno run -A --node-modules-dir=auto bench/idle.ts [--targets kv,kv-ws] [--streams 19200]
 *     [--devices 2] [--device-processes auto] [--idle-seconds 30] [--rate 500] [--seconds 20]
 *     [--warmup 500x5] [--max-streams N (default: streams + 100)] [--heartbeat-ms]
 *
 * 19,200 by default: the most that stays under the server's pressure mark (19,343 of this box's
 * 20,000 open files) with the server's own ~40 descriptors and the venue's 64 connections; past
 * it the server sheds, which closes every app socket (bench/README.md, "20,000 connections on one
 * instance"). The devices are held by child processes (bench/device_pool.ts), at most 7,000 each:
 * the load generator has the same limit. This process only reads the server's stdout (the GC
 * trace) and runs a second copy of itself (`--inner`) for everything else, whose stdout the
 * server inherits.
 */
import { parseArgs } from "node:util";
import type { Streams } from "./clients.ts";
import { startDevicePool } from "./device_pool.ts";
import { GcTrace } from "./gc_trace.ts";
import { runLadder } from "./ladder.ts";
import { openFileLimit, pressureMarkFor } from "../server/descriptors.ts";
import {
  collectGarbage,
  cpuTimes,
  type Defer,
  pinSelf,
  rssKb,
  treeCpuMicros,
  withCleanups,
} from "./procs.ts";
import { BLOTTER_INGEST, fillReport, spawnBlotter, type Target } from "./targets.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, places = 1) => +x.toFixed(places);

/** The flags (above), parsed. */
function options() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      inner: { type: "boolean", default: false },
      targets: { type: "string", default: "kv,kv-ws" },
      streams: { type: "string", default: "19200" },
      devices: { type: "string", default: "2" },
      "device-processes": { type: "string", default: "auto" },
      "idle-seconds": { type: "string", default: "30" },
      rate: { type: "string", default: "500" },
      seconds: { type: "string", default: "20" },
      warmup: { type: "string", default: "500x5" },
      "max-streams": { type: "string" },
      "heartbeat-ms": { type: "string" },
    },
  });
  const streams = Number(values.streams);
  const devices = Number(values.devices);
  const [wRate, wSeconds] = values.warmup === "0" ? [0, 0] : values.warmup.split("x").map(Number);
  return {
    inner: values.inner,
    targets: values.targets.split(",").map((t) => t.trim()) as Array<"kv" | "kv-ws">,
    users: Math.ceil(streams / devices),
    devices,
    processes: values["device-processes"] === "auto"
      ? Math.max(1, Math.ceil(streams / 7_000))
      : Number(values["device-processes"]),
    idleSeconds: Number(values["idle-seconds"]),
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    warmup: { rate: wRate, seconds: wSeconds },
    maxStreams: Number(values["max-streams"] ?? streams + 100),
    heartbeatMs: values["heartbeat-ms"] ? Number(values["heartbeat-ms"]) : undefined,
  };
}

type Options = ReturnType<typeof options>;

/** Tells the outer process which phase the GC lines that follow belong to. */
function phase(target: string, name: string): void {
  console.log(JSON.stringify({ kind: "phase", phase: `${target}:${name}` }));
}

/** Descriptors a process holds, by what they are ("socket", "anon_inode:[eventpoll]", a file…). */
function openFiles(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const what = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`).replace(/:\[\d+\]$/, "");
      kinds[what] = (kinds[what] ?? 0) + 1;
    } catch { /* closed while listing */ }
  }
  return kinds;
}

/** Descriptors in all. */
const total = (kinds: Record<string, number>) => Object.values(kinds).reduce((a, b) => a + b, 0);

/** Streams and sockets the server ended so far, by reason (its /metrics). */
async function closedByReason(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^blotter_streams_closed_total\{reason="([^"]*)"\} (\S+)$/gm)) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * The server's (and the device processes') CPU % of one core over `seconds`, and whatever else
 * ran on CPU 0 meanwhile (other processes on the box: the reading is clean only when that is ~0).
 */
async function cpuOver(seconds: number, server: () => number, devices: () => number) {
  const [s0, d0, c0, t0] = [server(), devices(), cpuTimes()[0], performance.now()];
  await sleep(seconds * 1000);
  const ms = performance.now() - t0;
  const serverUs = server() - s0;
  return {
    server: serverUs / (ms * 10),
    devices: (devices() - d0) / (ms * 10),
    otherOnCpu0: (cpuTimes()[0].busy - c0.busy - serverUs) / (ms * 10),
  };
}

/** One target: the server, its users, the idle readings, then one step of the ladder. */
async function measure(name: "kv" | "kv-ws", o: Options, defer: Defer) {
  phase(name, "setup");
  const kvDir = await Deno.makeTempDir({ prefix: "blotter-bench-kv-" });
  defer(() => Deno.remove(kvDir, { recursive: true }));
  // The users are made by the device processes (each its share), not here.
  const server = await spawnBlotter({
    store: "kv",
    kvDir,
    gc: true,
    heartbeatMs: o.heartbeatMs,
    // The derived cap (14,014 here) would refuse the rest.
    env: { MAX_STREAMS: String(o.maxStreams) },
  });
  defer(server.stop);
  const serverCpu = () => treeCpuMicros(server.pid);
  const setupFrom = performance.now();
  const pool = await startDevicePool({
    host: "127.0.0.1",
    port: server.port,
    transport: name === "kv-ws" ? "ws" : "sse",
    users: o.users,
    devicesPerUser: o.devices,
    processes: o.processes,
  });
  defer(pool.stop);
  // Each phase for the server's collections (outer process) and the device processes' alike.
  const mark = (p: string) => {
    phase(name, p);
    pool.gc.phase(p);
  };
  console.error(
    `${name}: ${o.users} users made in ${round((performance.now() - setupFrom) / 1000)} s ` +
      `by ${o.processes} device processes`,
  );
  await sleep(2000);
  await collectGarbage(server.inspectPort!);
  const filesBefore = openFiles(server.pid);
  mark("idle, none open");
  const before = await cpuOver(o.idleSeconds, serverCpu, pool.cpuMicros);

  let idle: Record<string, unknown> = {};
  const held: { streams?: Streams } = {};
  let step = -1;
  const target: Target = {
    name,
    pid: server.pid,
    port: server.port,
    inspectPort: server.inspectPort,
    ingestPath: BLOTTER_INGEST.path,
    ingestHeaders: BLOTTER_INGEST.headers,
    cpuMicros: serverCpu,
    stop: server.stop,
    report: (s, n, at) => {
      if (s !== step) mark((step = s) === 0 ? "warm-up" : `step ${s}`);
      return fillReport(pool.orders[n % o.users], s, n, at);
    },
    openStreams: async (sink): Promise<Streams> => {
      mark("opening");
      const from = performance.now();
      const streams = held.streams = await pool.open(sink);
      const openedIn = (performance.now() - from) / 1000;
      mark("settling");
      await sleep(3000);
      mark("idle, all open");
      const idleAll = await cpuOver(o.idleSeconds, serverCpu, pool.cpuMicros);
      const heartbeatMs = o.heartbeatMs ?? 15_000;
      const open = streams.count();
      idle = {
        streams: open,
        opened_in_s: round(openedIn),
        server_open_files_none_open: total(filesBefore),
        server_open_files_all_open: total(openFiles(server.pid)),
        server_open_files_none_open_by_kind: filesBefore,
        idle_seconds: o.idleSeconds,
        server_cpu_percent_none_open: round(before.server, 2),
        server_cpu_percent_all_open: round(idleAll.server, 2),
        heartbeat_cpu_percent: round(idleAll.server - before.server, 2),
        // µs of server CPU per heartbeat sent: the extra CPU over the heartbeats in that time.
        heartbeat_cpu_us_each: round(
          ((idleAll.server - before.server) * 1e4) / (open / (heartbeatMs / 1000)),
        ),
        device_processes_cpu_percent_idle: round(idleAll.devices, 2),
        other_load_cpu0_percent_none_open_all_open: [
          round(before.otherOnCpu0, 1),
          round(idleAll.otherOnCpu0, 1),
        ],
        server_rss_mb_all_open_no_gc: round(rssKb(server.pid) / 1024),
      };
      mark("ladder");
      return streams;
    },
  };
  const ran = await runLadder(target, {
    rates: [o.rate],
    seconds: o.seconds,
    devicesPerUser: o.devices,
    connections: 64,
    batch: 1,
    drainSeconds: 10,
    gc: true,
    warmup: o.warmup,
    postgresCpu: null,
    extra: { device_processes: o.processes },
  });
  mark("end");
  const closed = await closedByReason(server.port);
  const s = ran.steps[0];
  const deviceGc = pool.gc.summary("step 1");
  console.log(JSON.stringify({ kind: "device_gc", target: name, phases: pool.gc.all() }));
  console.log(JSON.stringify({
    kind: "connections",
    target: name,
    date: new Date().toISOString(),
    ...idle,
    server_rss_mb_none_open: ran.idle.server_rss_mb_before,
    server_rss_mb_all_open: ran.idle.server_rss_mb_idle,
    kb_per_connection: ran.idle.server_kb_per_idle_stream,
    rate: s?.rate_target,
    latency_ms: s?.latency_ms,
    lost: s?.lost,
    duplicates: s?.duplicates,
    out_of_order: s?.out_of_order,
    reports_refused: s?.reports_refused,
    server_cpu_us_per_report: s?.server_cpu_us_per_report,
    // Nothing should have ended before the devices closed; if something did, this says why.
    server_streams_closed: closed,
    streams_open_after_step: held.streams?.count(),
    // A long pause here is the generator's, not the server's (see device_gc).
    device_processes_longest_gc_pause_ms_step: Math.max(
      0,
      ...Object.values(deviceGc).map((t) => t.longest_pause_ms),
    ),
  }));
}

/** The inner process: everything but reading the GC trace. */
async function inner(o: Options): Promise<void> {
  await withCleanups(async (defer, cleanUp) => {
    if (navigator.hardwareConcurrency >= 2) await pinSelf(1);
    for (const name of o.targets) {
      await measure(name, o, defer);
      await cleanUp();
    }
  });
}

/** Lines of a byte stream, each handed to `each` as it comes. */
async function eachLine(readable: ReadableStream<Uint8Array>, each: (line: string) => void) {
  let buf = "";
  for await (const chunk of readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) each(buf.slice(0, nl));
  }
  if (buf) each(buf);
}

/**
 * The outer process: runs the inner one and sorts the server's GC lines by phase. The server's
 * stdout (its GC trace, which V8 writes in pieces) comes alone on the inner's stdout; the inner
 * writes its own lines, the phases among them, to its stderr, so no line is ever cut by another.
 */
async function outer(o: Options): Promise<void> {
  if (navigator.hardwareConcurrency >= 2) await pinSelf(1);
  const limit = openFileLimit();
  const mark = pressureMarkFor(limit);
  console.log(JSON.stringify({
    kind: "run",
    date: new Date().toISOString(),
    ...o,
    open_file_limit: limit,
    server_pressure_mark: mark,
  }));
  // Past the mark the server sheds connections without a request in flight (server/serve.ts),
  // and a shed closes every app socket with them: the streams, the venue's 64 connections and the
  // server's own ~40 files must stay under it.
  if (o.users * o.devices + 64 + 40 >= mark) {
    console.error(
      `warning: ${o.users * o.devices} devices + 64 venue connections + ~40 of the server's own ` +
        `files reach the server's pressure mark (${mark} of ${limit}): it will shed`,
    );
  }
  const flags = [Deno.env.get("BENCH_V8_FLAGS"), "--trace-gc"].filter(Boolean).join(",");
  const script = new URL(import.meta.url).pathname;
  // stdbuf: V8 prints its trace through C's stdout, which a pipe would hold in 4 KB blocks (lines
  // then arrive seconds late, in the wrong phase); line-buffered, each arrives as it is written.
  const child = new Deno.Command("stdbuf", {
    args: [
      "-oL",
      Deno.execPath(),
      "run",
      "-A",
      "--node-modules-dir=auto",
      script,
      "--inner",
      ...Deno.args,
    ],
    // The server inherits it (bench/targets.ts adds BENCH_V8_FLAGS to its V8 flags).
    env: { BENCH_V8_FLAGS: flags },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Ctrl-C reaches the inner process too (same process group); it stops what it started.
  const gc = new GcTrace();
  await Promise.all([
    eachLine(child.stdout, (line) => gc.line(line) || console.error(line)),
    eachLine(child.stderr, (line) => {
      if (line.startsWith('{"kind":"phase"')) gc.phase(JSON.parse(line).phase);
      else console.log(line);
    }),
  ]);
  const status = await child.status;
  console.log(JSON.stringify({ kind: "gc", phases: gc.all() }));
  // The load steps' collections in order, to line up with each step's p99_ms_by_second.
  for (const name of o.targets) {
    const steps = gc.moments(`${name}:step 1`);
    console.log(JSON.stringify({ kind: "gc_moments", target: name, phase: "step 1", steps }));
  }
  if (!status.success) Deno.exit(status.code || 1);
}

if (import.meta.main) {
  const o = options();
  if (o.inner) {
    // This process's lines go to stderr: its stdout is the server's (see outer).
    console.log = console.error;
    await inner(o);
  } else await outer(o);
}
