/**
 * `deno task bench`: Blotter on Postgres, Blotter on Deno KV and the Socket.IO yardstick, one
 * after the other in the same run, measured the way issue 14 asks (bench/README.md has the method
 * and what every figure means). The system under test runs alone on CPU 0 (server and, for
 * Postgres, the bench's own cluster); this process, the load generator, pins itself to CPU 1.
 *
 *   deno task bench [--targets postgres,kv,socketio] [--users 2500] [--devices 2]
 *                   [--rates 1000,2000,4000,8000] [--seconds 10] [--connections 64] [--batch 1]
 *                   [--warmup 500x5 (RATExSECONDS of an unmeasured first step, or 0)]
 *   deno task bench:socketio [same flags]   (the yardstick alone)
 *
 * Nothing here is a test and nothing asserts a time. Every process and the temporary cluster are
 * removed at the end, on an error and on Ctrl-C.
 */
import { parseArgs } from "node:util";
import { runLadder } from "./ladder.ts";
import { type BenchCluster, durability, fdatasyncFigure, startCluster } from "./pg_cluster.ts";
import { affinity, pinSelf, withCleanups } from "./procs.ts";
import { startBlotter, startSocketIo, type Target } from "./targets.ts";

/** kv-ws: Blotter on KV with every device on the app socket instead of the stream. */
const TARGETS = ["postgres", "kv", "kv-ws", "socketio"] as const;

/** `--warmup RATExSECONDS` (e.g. 500x5), or 0 for none. */
export function warmupOption(v: string): { rate: number; seconds: number } {
  if (v === "0") return { rate: 0, seconds: 0 };
  const [rate, seconds] = v.split("x").map(Number);
  if (!(rate > 0 && seconds > 0)) throw new Error(`--warmup wants RATExSECONDS or 0, not ${v}`);
  return { rate, seconds };
}

/** Parses the flags; `defaultTargets` differs between `bench` and `bench:socketio`. */
function options(defaultTargets: string) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      targets: { type: "string", default: defaultTargets },
      users: { type: "string", default: "2500" },
      devices: { type: "string", default: "2" },
      streams: { type: "string" },
      rates: { type: "string", default: "1000,2000,4000,8000" },
      rate: { type: "string" },
      seconds: { type: "string", default: "10" },
      connections: { type: "string", default: "64" },
      batch: { type: "string", default: "1" },
      drain: { type: "string", default: "10" },
      "no-gc": { type: "boolean", default: false },
      runtime: { type: "string", default: "node" },
      "pg-port": { type: "string", default: "5499" },
      "fsync-seconds": { type: "string", default: "2" },
      "heartbeat-ms": { type: "string" },
      warmup: { type: "string", default: "500x5" },
    },
  });
  const devices = Number(values.devices);
  const targets = values.targets.split(",").map((t) => t.trim());
  for (const t of targets) {
    if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`unknown target ${t}`);
  }
  return {
    targets: targets as Array<(typeof TARGETS)[number]>,
    devices,
    // --streams N is a shorthand for N / devices users.
    users: values.streams ? Math.ceil(Number(values.streams) / devices) : Number(values.users),
    rates: (values.rate ?? values.rates).split(",").map(Number).sort((a, b) => a - b),
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    batch: Number(values.batch),
    drainSeconds: Number(values.drain),
    gc: !values["no-gc"],
    warmup: warmupOption(values.warmup),
    runtime: values.runtime === "deno" ? "deno" as const : "node" as const,
    pgPort: Number(values["pg-port"]),
    fsyncSeconds: Number(values["fsync-seconds"]),
    heartbeatMs: values["heartbeat-ms"] ? Number(values["heartbeat-ms"]) : undefined,
  };
}

/** Runs the bench; `defaultTargets` is what runs without `--targets`. */
export async function main(defaultTargets = TARGETS.join(",")): Promise<void> {
  const o = options(defaultTargets);
  await withCleanups(async (defer, cleanUp) => {
    if (navigator.hardwareConcurrency >= 2) await pinSelf(1);
    const machine = {
      cpus: navigator.hardwareConcurrency,
      generator_cpus: affinity("self"),
      deno: Deno.version.deno,
      users: o.users,
      devices_per_user: o.devices,
    };
    console.log(JSON.stringify({ kind: "run", date: new Date().toISOString(), ...machine, ...o }));
    console.log(
      `one 8 kB WAL write (pg_test_fsync -s ${o.fsyncSeconds}): ${await fdatasyncFigure(
        o.fsyncSeconds,
      )}`,
    );

    let cluster: BenchCluster | null = null;
    for (const name of o.targets) {
      let target: Target;
      let kvDir: string | null = null;
      if (name === "postgres") {
        cluster = await startCluster(o.pgPort);
        defer(cluster.stop);
        console.log(
          `bench Postgres on 127.0.0.1:${cluster.port}, pinned to CPU 0, Postgres's defaults ` +
            `(a 201 is on disk): ${await durability(cluster)}`,
        );
      }
      if (name === "kv" || name === "kv-ws") {
        const dir = kvDir = await Deno.makeTempDir({ prefix: "blotter-bench-kv-" });
        defer(() => Deno.remove(dir, { recursive: true }));
      }
      const setupFrom = performance.now();
      if (name === "socketio") {
        target = await startSocketIo({
          users: o.users,
          devicesPerUser: o.devices,
          gc: o.gc,
          runtime: o.runtime,
        });
      } else {
        target = await startBlotter({
          store: name === "kv-ws" ? "kv" : name,
          transport: name === "kv-ws" ? "ws" : "sse",
          databaseUrl: cluster?.url,
          kvDir: kvDir ?? undefined,
          users: o.users,
          devicesPerUser: o.devices,
          gc: o.gc,
          heartbeatMs: o.heartbeatMs,
        });
      }
      defer(target.stop);
      console.error(
        `${name}: server ${target.pid} ready, set up in ${
          ((performance.now() - setupFrom) / 1000).toFixed(1)
        } s`,
      );
      await runLadder(target, {
        rates: o.rates,
        seconds: o.seconds,
        devicesPerUser: o.devices,
        connections: o.connections,
        batch: o.batch,
        drainSeconds: o.drainSeconds,
        gc: o.gc,
        warmup: o.warmup,
        postgresCpu: name === "postgres" ? cluster!.cpuMicros : null,
        extra: name === "socketio" ? { server_runtime: o.runtime } : {},
      });
      // This target's server (and cluster or KV file) go before the next one starts.
      await cleanUp();
      cluster = null;
    }
  });
}

if (import.meta.main) await main();
