/**
 * Devices held by several processes: past ~19,900 connections one process runs out of open files
 * (the hard limit here is 20,000, for the load generator as for the server), so the devices of
 * bench/idle.ts are split over child processes, each holding its share with the same openers as
 * the in-process bench (bench/clients.ts: node:http streams and their minimal SSE reader, or app
 * sockets). Each child makes its own users through the API, opens their streams when told, and
 * passes every delivery it reads back to the parent (one tab-separated line each, with the time it
 * read it), which tallies them in the ladder's `Deliveries` as if it had read them itself.
 *
 *   parent → child (stdin, JSON lines): {host, port, transport, firstUser, users, devicesPerUser},
 *     then {"cmd":"open"}, then {"cmd":"close"} (or end of input)
 *   child → parent (stdout): {"kind":"seeded","orders":[…]}, {"kind":"open","count":N},
 *     {"kind":"count","count":N} when it changes, {"kind":"error",…},
 *     `r\tslot\texec\tat\tnow\tinOrder` per delivery, and its own V8 GC trace lines
 */
import { type Device, openAppSockets, openSseStreams, type Streams } from "./clients.ts";
import { Deliveries, type Sink } from "./deliveries.ts";
import { GcTrace } from "./gc_trace.ts";
import { treeCpuMicros } from "./procs.ts";
import { seedUsers } from "./targets.ts";

const encoder = new TextEncoder();

/** What one child is asked to hold. */
interface Share {
  host: string;
  port: number;
  transport: "sse" | "ws";
  firstUser: number;
  users: number;
  devicesPerUser: number;
}

/** Devices spread over child processes, seeded and ready to open. */
export interface DevicePool {
  /** Each user's one working order (user u is `bench<u>`), for the reports. */
  readonly orders: string[];
  /** The children's process ids. */
  readonly pids: number[];
  /** Opens every device's stream; deliveries go to `sink.current`. Resolves once all are open. */
  open(sink: Sink): Promise<Streams>;
  /** CPU µs the children have used so far. */
  cpuMicros(): number;
  /**
   * The children's own garbage collections, by phase (`gc.phase` moves it on): a delivery is
   * timed when a child reads it, so a child's pause shows in the latencies as if the server's.
   */
  readonly gc: GcTrace;
  /** Closes every stream and ends the children. */
  stop(): Promise<void>;
}

/** Splits the text of a byte stream into lines. */
async function* lines(readable: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) yield buf;
}

/**
 * Starts `processes` children (pinned where this process is, by inheritance), each making and
 * holding an equal share of `users` × `devicesPerUser` devices on Blotter at host:port.
 */
export async function startDevicePool(opts: {
  host: string;
  port: number;
  transport: "sse" | "ws";
  users: number;
  devicesPerUser: number;
  processes: number;
}): Promise<DevicePool> {
  const orders: string[] = new Array(opts.users);
  const per = Math.ceil(opts.users / opts.processes);
  let sink: Sink = { current: null };
  const counts: number[] = [];
  const gc = new GcTrace();
  const children = Array.from({ length: opts.processes }, (_, i) => {
    // Line-buffered (stdbuf), so V8's trace lines come whole and in time between ours.
    const child = new Deno.Command("stdbuf", {
      args: [
        "-oL",
        Deno.execPath(),
        "run",
        "-A",
        "--node-modules-dir=auto",
        "--v8-flags=--trace-gc",
        new URL(import.meta.url).pathname,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const stdin = child.stdin.getWriter();
    const send = (msg: unknown) => stdin.write(encoder.encode(JSON.stringify(msg) + "\n"));
    const waiters = new Map<string, (msg: Record<string, unknown>) => void>();
    let fail!: (err: Error) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});
    const next = (kind: string) =>
      Promise.race([new Promise<Record<string, unknown>>((r) => waiters.set(kind, r)), failed]);
    // Read the child's output for as long as it runs: deliveries, then its answers.
    (async () => {
      for await (const line of lines(child.stdout)) {
        if (line.startsWith("r\t")) {
          const [, slot, exec, at, now, inOrder] = line.split("\t");
          sink.current?.record(Number(slot), exec, Number(at), Number(now), inOrder === "1");
          continue;
        }
        if (gc.line(line)) continue;
        const msg = JSON.parse(line);
        if (msg.kind === "count" || msg.kind === "open") counts[i] = msg.count;
        if (msg.kind === "error") {
          fail(new Error(`device process ${i}: ${msg.message}`));
        }
        waiters.get(msg.kind)?.(msg);
      }
      fail(new Error(`device process ${i} ended`));
    })();
    const firstUser = i * per;
    const share: Share = {
      host: opts.host,
      port: opts.port,
      transport: opts.transport,
      firstUser,
      users: Math.max(0, Math.min(per, opts.users - firstUser)),
      devicesPerUser: opts.devicesPerUser,
    };
    return { child, send, next, share, stdin };
  });
  const stop = async () => {
    for (const c of children) {
      await c.send({ cmd: "close" }).catch(() => {});
      await c.stdin.close().catch(() => {});
    }
    const bound = setTimeout(() => children.forEach((c) => c.child.kill("SIGKILL")), 10_000);
    await Promise.all(children.map((c) => c.child.status));
    clearTimeout(bound);
  };
  try {
    await Promise.all(children.map(async (c) => {
      await c.send(c.share);
      const seeded = await c.next("seeded");
      (seeded.orders as string[]).forEach((id, j) => orders[c.share.firstUser + j] = id);
    }));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    orders,
    pids: children.map((c) => c.child.pid),
    open: async (s) => {
      sink = s;
      await Promise.all(children.map(async (c) => {
        await c.send({ cmd: "open" });
        await c.next("open");
      }));
      return {
        count: () => counts.reduce((a, b) => a + b, 0),
        // The children close their streams when the pool stops (they end with it).
        close: () => {},
      };
    },
    cpuMicros: () => children.reduce((sum, c) => sum + treeCpuMicros(c.child.pid), 0),
    gc,
    stop,
  };
}

/** Passes each delivery on to the parent instead of tallying it here. */
class Forwarder extends Deliveries {
  #out = "";
  constructor() {
    super(0, 0, 1);
    // Batched: one write per 20 ms at most (the read time is taken at the read, not here).
    setInterval(() => this.flush(), 20);
  }
  override record(slot: number, exec: string, atMs: number, now: number, inOrder: boolean) {
    this.#out += `r\t${slot}\t${exec}\t${atMs}\t${now}\t${inOrder ? 1 : 0}\n`;
  }
  flush(): void {
    if (!this.#out) return;
    const bytes = encoder.encode(this.#out);
    this.#out = "";
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}

/** The child: seeds its share, opens it when told, forwards deliveries, closes at the end. */
async function child(): Promise<void> {
  const forward = new Forwarder();
  const say = (msg: unknown) => {
    forward.flush();
    const bytes = encoder.encode(JSON.stringify(msg) + "\n");
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  };
  let share: Share | null = null;
  let seeded: { devices: Device[]; orders: string[] } | null = null;
  let streams: Streams | null = null;
  try {
    for await (const line of lines(Deno.stdin.readable)) {
      const msg = JSON.parse(line);
      if (!share) {
        share = msg as Share;
        const s = share;
        seeded = await seedUsers(
          `http://${s.host}:${s.port}`,
          s.users,
          s.devicesPerUser,
          50,
          s.firstUser,
        );
        say({ kind: "seeded", orders: seeded.orders });
      } else if (msg.cmd === "open") {
        const opener = share.transport === "ws" ? openAppSockets : openSseStreams;
        streams = await opener(share.host, share.port, seeded!.devices, { current: forward });
        say({ kind: "open", count: streams.count() });
        let last = streams.count();
        setInterval(() => {
          const now = streams!.count();
          if (now !== last) say({ kind: "count", count: last = now });
        }, 500);
      } else if (msg.cmd === "close") break;
    }
  } catch (err) {
    say({ kind: "error", message: String(err) });
  }
  streams?.close();
  Deno.exit(0);
}

if (import.meta.main) await child();
