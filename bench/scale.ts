/**
 * `deno task bench:scale` (issue 25): 1, 2 and 4 Blotter instances sharing one Postgres, their
 * committed events exchanged by Postgres LISTEN/NOTIFY and by NATS (`EVENT_BUS_URL`, a private
 * nats-server), at one fixed report rate. Users are spread over the instances as a load balancer
 * that keeps a user's connections together would spread them (consecutive blocks of users per
 * instance; each user's devices on `--spread` instances from its own); the venue's reports are
 * POSTed round-robin over all instances, one request per report (or, with `--ingest dedicated`,
 * all to one more instance that holds no streams: the others then only deliver). Per instance: its
 * CPU per report of the total rate and per report of its own users, beside its share of the users
 * — what an instance pays for the other instances' users is the question. Per configuration: Postgres' and
 * nats-server's CPU per report, WAL syncs per report, the ingest answer time (the commit as the
 * venue sees it) and sent → received latency at the devices. Everything under test (instances,
 * Postgres, nats-server) is pinned to CPU 0, this process (the load generator) to CPU 1, as
 * bench/README.md's method says; a fresh cluster for every configuration.
 *
 *   deno task bench:scale [--instances 1,2,4] [--buses notify,nats] [--rate 1000] [--seconds 20]
 *                         [--users 1500] [--devices 2] [--spread 1] [--connections 64]
 *                         [--ingest round-robin|dedicated]
 *                         [--warmup 500x5] [--drain 10] [--nats-server nats-server]
 *
 * Nothing here is a test and nothing asserts a time. Every process and cluster it starts is
 * removed at the end, on an error and on Ctrl-C.
 */
import { parseArgs } from "node:util";
import type { Sink } from "./deliveries.ts";
import { startFleet, startNats } from "./fleet.ts";
import { durability, startCluster } from "./pg_cluster.ts";
import { affinity, type Defer, pinSelf, withCleanups } from "./procs.ts";
import { warmupOption } from "./run.ts";
import { idleCpu, measureStep, warmUp } from "./scale_step.ts";
import { printTables } from "./scale_table.ts";

/** How the instances hear each other's commits. */
type Bus = "notify" | "nats";

function options() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      instances: { type: "string", default: "1,2,4" },
      buses: { type: "string", default: "notify,nats" },
      rate: { type: "string", default: "1000" },
      seconds: { type: "string", default: "20" },
      users: { type: "string", default: "1500" },
      devices: { type: "string", default: "2" },
      spread: { type: "string", default: "1" },
      ingest: { type: "string", default: "round-robin" },
      connections: { type: "string", default: "64" },
      drain: { type: "string", default: "10" },
      warmup: { type: "string", default: "500x5" },
      "pg-port": { type: "string", default: "5499" },
      "nats-server": { type: "string", default: "nats-server" },
    },
  });
  const buses = values.buses.split(",").map((b) => b.trim());
  for (const b of buses) if (b !== "notify" && b !== "nats") throw new Error(`unknown bus ${b}`);
  const ingest = values.ingest;
  if (ingest !== "round-robin" && ingest !== "dedicated") {
    throw new Error(`unknown ingest ${ingest}`);
  }
  return {
    instances: values.instances.split(",").map(Number),
    buses: buses as Bus[],
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    users: Number(values.users),
    devices: Number(values.devices),
    spread: Number(values.spread),
    ingest: ingest as "round-robin" | "dedicated",
    connections: Number(values.connections),
    drainSeconds: Number(values.drain),
    warmup: warmupOption(values.warmup),
    pgPort: Number(values["pg-port"]),
    natsServer: values["nats-server"],
  };
}
type Options = ReturnType<typeof options>;

/** One configuration's figures (one JSON line; rows of both tables). */
export type Configuration = Awaited<ReturnType<typeof measure>>;

/**
 * One configuration, from a fresh cluster to its figures: idle CPU with the streams open, an
 * unmeasured warm-up, then step 1 with reports for every user and (with more than one instance)
 * step 2 with reports only for the users of instance 0 — where every other instance's CPU is what
 * it pays for events of users it does not serve.
 */
async function measure(n: number, bus: Bus, o: Options, defer: Defer) {
  const cluster = await startCluster(o.pgPort);
  defer(cluster.stop);
  console.error(`Postgres on ${cluster.port}, pinned to CPU 0: ${await durability(cluster)}`);
  const nats = bus === "nats" ? await startNats(o.natsServer) : null;
  if (nats) defer(nats.stop);
  const sink: Sink = { current: null };
  const setupFrom = performance.now();
  const env: Record<string, string> = nats ? { EVENT_BUS_URL: nats.url } : {};
  const f = await startFleet(n, env, cluster.url, o, sink, defer);
  console.error(
    `${n} × ${bus}: ready in ${((performance.now() - setupFrom) / 1000).toFixed(1)} s`,
  );
  const sys = { cluster, natsPid: nats?.pid ?? null, sink, devicesPerUser: o.devices };
  const everyone = Array.from({ length: o.users }, (_, u) => u);
  const idle = await idleCpu(f, 3);
  // Unmeasured: every instance's caches filled, the JIT done, as on servers up for a while.
  if (o.warmup.seconds > 0) await warmUp(f, sys, { ...o, ...o.warmup, focus: everyone });
  const all = await measureStep(f, sys, 1, { ...o, focus: everyone });
  let one = null;
  if (n > 1) {
    await new Promise((r) => setTimeout(r, 2000));
    one = await measureStep(f, sys, 2, { ...o, focus: everyone.filter((u) => f.served[0][u]) });
  }
  return {
    kind: "configuration",
    date: new Date().toISOString(),
    instances: n,
    bus,
    ingest: o.ingest,
    users: o.users,
    connections: f.devicesOn,
    users_share_percent: f.served.map((s) =>
      +(100 * s.filter(Boolean).length / o.users).toFixed(1)
    ),
    idle_cpu_percent: idle,
    all,
    only_instance_0_users: one,
  };
}

if (import.meta.main) {
  const o = options();
  await withCleanups(async (defer, cleanUp) => {
    if (navigator.hardwareConcurrency >= 2) await pinSelf(1);
    console.log(JSON.stringify({
      kind: "run",
      date: new Date().toISOString(),
      cpus: navigator.hardwareConcurrency,
      generator_cpus: affinity("self"),
      deno: Deno.version.deno,
      ...o,
    }));
    const results: Configuration[] = [];
    for (const n of o.instances) {
      for (const bus of o.buses) {
        const c = await measure(n, bus, o, defer);
        console.log(JSON.stringify(c));
        results.push(c);
        await cleanUp(); // this configuration's instances, nats-server and cluster go first
      }
    }
    printTables(results);
  });
}
