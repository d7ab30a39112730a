/**
 * The instances of `deno task bench:scale` (bench/scale.ts) as a load balancer would see them:
 * N Blotter servers on one Postgres (and, for the bus, a private nats-server), all pinned to CPU 0;
 * each device's stream opened on the instance that serves its user; the venue's reports POSTed
 * round-robin over the instances.
 */
import { type Device, openSseStreams } from "./clients.ts";
import type { Sink } from "./deliveries.ts";
import { type Defer, freePort, spawnPinned } from "./procs.ts";
import { Sender } from "./sender.ts";
import {
  BLOTTER_INGEST,
  type BlotterProcess,
  fillReport,
  seedUsers,
  spawnBlotter,
} from "./targets.ts";

/** How users, devices and the venue's connections are laid out. */
export interface Layout {
  users: number;
  devices: number;
  /** Over how many instances one user's devices are spread (1: all on one). */
  spread: number;
  /** The venue's keep-alive connections, shared out over the instances. */
  connections: number;
  /**
   * Where the venue's reports go: `round-robin` over the instances, or `dedicated` to one more
   * instance that holds no streams (so that the others' CPU is delivery alone).
   */
  ingest: "round-robin" | "dedicated";
}

/** A private nats-server on a free port, pinned to CPU 0 with the rest of the system under test. */
export async function startNats(bin: string) {
  const port = freePort();
  const server = await spawnPinned([bin, "-a", "127.0.0.1", "-p", String(port)], {}, async () => {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  });
  return { ...server, url: `nats://127.0.0.1:${port}` };
}

/** One configuration running: the instances, whom each serves, the venue's connections to each. */
export interface Fleet {
  instances: BlotterProcess[];
  orders: string[];
  /** served[i][u]: instance i holds connections of user u. */
  served: boolean[][];
  devicesOn: number[];
  senders: Sender[];
  /** The instance each sender POSTs to. */
  ingestAt: number[];
}

/**
 * Starts `n` instances on `databaseUrl` (the first alone, so that it applies the schema first),
 * makes the users through the first, opens each device's stream on the instance the load
 * balancer gives it: user u's block is instance ⌊u·n/users⌋, its device `slot` goes `slot %
 * spread` instances further. Blocks, not u % n, so that which instance serves a user has nothing
 * to do with which instance the round-robin venue POSTs that user's report to.
 */
export async function startFleet(
  n: number,
  env: Record<string, string>,
  databaseUrl: string,
  o: Layout,
  sink: Sink,
  defer: Defer,
): Promise<Fleet> {
  const spawn = async () => {
    const p = await spawnBlotter({ store: "postgres", databaseUrl, gc: false, env });
    defer(p.stop);
    return p;
  };
  const first = await spawn();
  const more = n - 1 + (o.ingest === "dedicated" ? 1 : 0);
  const instances = [first, ...await Promise.all(Array.from({ length: more }, spawn))];
  const { devices, orders } = await seedUsers(first.base, o.users, o.devices);
  const served = instances.map(() => new Array<boolean>(o.users).fill(false));
  const byInstance: Device[][] = instances.map(() => []);
  devices.forEach((d, i) => {
    const u = Math.floor(i / o.devices);
    const at = (Math.floor((u * n) / o.users) + (d.slot % o.spread)) % n;
    served[at][u] = true;
    byInstance[at].push(d);
  });
  const streams = await Promise.all(
    instances.map((p, i) => openSseStreams("127.0.0.1", p.port, byInstance[i], sink)),
  );
  defer(() => streams.forEach((s) => s.close()));
  const ingestAt = o.ingest === "dedicated" ? [n] : instances.map((_, i) => i);
  const senders = ingestAt.map((i) =>
    new Sender(
      "127.0.0.1",
      instances[i].port,
      BLOTTER_INGEST.path,
      BLOTTER_INGEST.headers,
      Math.max(1, Math.round(o.connections / ingestAt.length)),
    )
  );
  defer(() => senders.forEach((s) => s.close()));
  return {
    instances,
    orders,
    served,
    devicesOn: byInstance.map((d) => d.length),
    senders,
    ingestAt,
  };
}

/**
 * The user of report n of a round-robin step (report n goes to instance n % instances): each
 * instance walks the users from its own offset, so that one user's reports reach every instance
 * in turn, as a round-robin balancer spreads a venue's requests. (User n % users would send all of
 * a user's reports to one instance whenever the number of users is a multiple of N.)
 */
export function userOf(focus: number[], instances: number, n: number): number {
  const offset = Math.floor(focus.length / instances) * (n % instances);
  return focus[(Math.floor(n / instances) + offset) % focus.length];
}

/**
 * `rate` reports/s for `seconds` on step `step`, round-robin over the instances: report n goes to
 * instance n % N, each instance's share over its own connections, for user `userOf(focus, N, n)`
 * (every user, or only some). Answers each instance's result.
 */
export function sendRoundRobin(
  f: Fleet,
  step: number,
  o: { rate: number; seconds: number; drainSeconds: number; focus: number[] },
) {
  const n = f.senders.length;
  return Promise.all(f.senders.map((s, i) =>
    s.run({
      rate: o.rate / n,
      seconds: o.seconds,
      batch: 1,
      drainSeconds: o.drainSeconds,
      report: (k, at) => {
        const r = k * n + i;
        return fillReport(f.orders[userOf(o.focus, n, r)], step, r, at);
      },
    })
  ));
}

/** The sum of the samples in a Prometheus text answer whose line starts with `prefix`. */
function metricSum(text: string, prefix: string): number {
  return text.split("\n").filter((l) => l.startsWith(prefix))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** What an instance's /metrics says so far of its report groups and of the bus. */
export interface Scrape {
  /** Report groups that left the fast path (blotter_report_fallbacks_total, every reason). */
  fallbacks: number;
  /** Bus messages published and received (blotter_bus_messages_total; 0 without a bus). */
  published: number;
  received: number;
  /** Users this instance receives from the bus (blotter_bus_subscriptions). */
  subscriptions: number;
}

/** Each instance's /metrics, read between measurements (its own CPU then is not counted). */
export function scrape(f: Fleet): Promise<Scrape[]> {
  return Promise.all(f.instances.map(async (p) => {
    const text = await (await fetch(`${p.base}/metrics`)).text();
    return {
      fallbacks: metricSum(text, "blotter_report_fallbacks_total"),
      published: metricSum(text, 'blotter_bus_messages_total{direction="published"}'),
      received: metricSum(text, 'blotter_bus_messages_total{direction="received"}'),
      subscriptions: metricSum(text, "blotter_bus_subscriptions "),
    };
  }));
}
