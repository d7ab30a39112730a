/**
 * One measured step of `deno task bench:scale` (bench/scale.ts): reports at a fixed rate,
 * round-robin over the instances, for every user or only some; then the CPU of each process under
 * test from /proc over the step and its drain (each instance, every process of the cluster,
 * nats-server), Postgres' WAL syncs and commits, each instance's /metrics, the ingest answer
 * times and what the devices received.
 */
import { awaitDeliveries, Deliveries, type Sink } from "./deliveries.ts";
import { type Fleet, scrape, sendRoundRobin, userOf } from "./fleet.ts";
import { type BenchCluster, psql } from "./pg_cluster.ts";
import { cpuTimes, treeCpuMicros } from "./procs.ts";

/** What runs besides the instances, and how the devices are counted. */
export interface System {
  cluster: BenchCluster;
  natsPid: number | null;
  sink: Sink;
  devicesPerUser: number;
}

const round = (x: number, places = 0) => Number.isFinite(x) ? +x.toFixed(places) : null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** WAL syncs and committed transactions of the whole cluster so far (pg_stat_wal, _database). */
async function pgCounters(cluster: BenchCluster) {
  const out = await psql(
    cluster,
    "select wal_sync || ' ' || (select sum(xact_commit) from pg_stat_database) from pg_stat_wal",
  );
  const [walSyncs, commits] = out.split(" ").map(Number);
  return { walSyncs, commits };
}

/** p-quantile of `xs` (sorted in place). */
function quantile(xs: number[], p: number): number {
  xs.sort((a, b) => a - b);
  return xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : NaN;
}

/** Each instance's CPU % of one core over `seconds` with its streams open and no reports. */
export async function idleCpu(f: Fleet, seconds: number): Promise<Array<number | null>> {
  const from = f.instances.map((p) => treeCpuMicros(p.pid));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const wall = (performance.now() - t0) / 1000;
  return f.instances.map((p, i) => round((treeCpuMicros(p.pid) - from[i]) / (wall * 1e4), 1));
}

/** Report numbers of a round-robin step go up to this (each instance sends its share). */
const capacity = (rate: number, seconds: number, n: number) =>
  n * Math.ceil((rate / n) * seconds) + n;

/** The unmeasured warm-up: sends, then waits for its deliveries and 2 s more. */
export async function warmUp(
  f: Fleet,
  sys: System,
  o: { rate: number; seconds: number; drainSeconds: number; focus: number[] },
): Promise<void> {
  const d = new Deliveries(0, capacity(o.rate, o.seconds, f.senders.length), sys.devicesPerUser);
  sys.sink.current = d;
  const sent = await sendRoundRobin(f, 0, o);
  await awaitDeliveries(d, sent.reduce((s, r) => s + r.accepted, 0) * sys.devicesPerUser);
  sys.sink.current = null;
  await sleep(2000);
}

/** Step `step`: `rate` reports/s for `seconds` over the users in `focus` (fleet.ts `userOf`). */
export async function measureStep(
  f: Fleet,
  sys: System,
  step: number,
  o: { rate: number; seconds: number; drainSeconds: number; focus: number[] },
) {
  const n = f.senders.length; // the round-robin's width: the instances, or the one that ingests
  const d = new Deliveries(step, capacity(o.rate, o.seconds, n), sys.devicesPerUser);
  sys.sink.current = d;
  // /metrics and psql are read outside the CPU window, so that their own cost is not counted.
  const [scrape0, pg0] = [await scrape(f), await pgCounters(sys.cluster)];
  const sample = () => ({
    instances: f.instances.map((p) => treeCpuMicros(p.pid)),
    pg: sys.cluster.cpuMicros(),
    nats: sys.natsPid ? treeCpuMicros(sys.natsPid) : 0,
    self: treeCpuMicros("self"),
    cpus: cpuTimes(),
    at: performance.now(),
  });
  const before = sample();
  const sent = await sendRoundRobin(f, step, o);
  const accepted = sent.reduce((s, r) => s + r.accepted, 0);
  await awaitDeliveries(d, accepted * sys.devicesPerUser);
  const after = sample();
  const [scrape1, pg1] = [await scrape(f), await pgCounters(sys.cluster)];
  sys.sink.current = null;

  const wall = (after.at - before.at) / 1000;
  const percent = (us: number) => round(us / (wall * 1e4), 1);
  const instUs = after.instances.map((us, i) => us - before.instances[i]);
  const instSum = instUs.reduce((a, b) => a + b, 0);
  const pgUs = after.pg - before.pg;
  const natsUs = after.nats - before.nats;
  const selfUs = after.self - before.self;
  const busy = after.cpus.map((c, i) => c.busy - before.cpus[i].busy);
  // Reports of each instance's own users (every instance sent as many: reports 0 to total - 1).
  const total = sent.reduce((s, r) => s + r.sent, 0);
  const own = f.served.map((users) => {
    let count = 0;
    for (let k = 0; k < total; k++) if (users[userOf(o.focus, n, k)]) count++;
    return count;
  });
  const lat = d.percentiles();
  const answers = sent.flatMap((r) => r.answerMs);
  const refused: Record<string, number> = {};
  for (const r of sent) {
    for (const [k, v] of Object.entries(r.refused)) refused[k] = (refused[k] ?? 0) + v;
  }
  const bus = sys.natsPid !== null;
  return {
    step,
    users_reported_on: o.focus.length,
    rate_target: o.rate,
    rate_achieved: Math.round(accepted / Math.max(...sent.map((r) => r.seconds))),
    reports_accepted: accepted,
    reports_refused: refused,
    reports_unsent: sent.reduce((s, r) => s + r.unsent, 0),
    deliveries_expected: accepted * sys.devicesPerUser,
    delivered: d.received,
    lost: accepted * sys.devicesPerUser - d.received,
    duplicates: d.duplicates,
    out_of_order: d.outOfOrder,
    latency_ms: lat,
    // Whether the tail is spread over the step or is one stall (a GC, the bus's sweep).
    p99_ms_by_second: d.p99BySecond(),
    ingest_answer_ms: {
      p50: round(quantile(answers, 0.5), 1),
      p99: round(quantile(answers, 0.99), 1),
    },
    instances_cpu_us_per_report: round(instSum / accepted),
    postgres_cpu_us_per_report: round(pgUs / accepted),
    postgres_cpu_percent: percent(pgUs),
    nats_cpu_us_per_report: bus ? round(natsUs / accepted) : null,
    wal_syncs_per_report: round((pg1.walSyncs - pg0.walSyncs) / accepted, 2),
    commits_per_report: round((pg1.commits - pg0.commits) / accepted, 2),
    generator_cpu_percent: percent(selfUs),
    // Whatever else ran on each CPU meanwhile (/proc/stat's busy time minus ours): the pinning
    // keeps our processes apart, not other processes out. Tick-sampled, so only roughly right.
    other_load_percent_cpu0_cpu1: [
      percent(busy[0] - instSum - pgUs - natsUs),
      percent(busy[1] - selfUs),
    ],
    measured_s: round(wall, 1),
    per_instance: f.instances.map((_, i) => ({
      instance: i,
      reports_posted: sent[f.ingestAt.indexOf(i)]?.accepted ?? 0,
      reports_of_own_users: own[i],
      cpu_percent: percent(instUs[i]),
      cpu_us_per_report: round(instUs[i] / accepted),
      cpu_us_per_own_report: own[i] ? round(instUs[i] / own[i]) : null,
      fallback_groups: scrape1[i].fallbacks - scrape0[i].fallbacks,
      bus_subscriptions: bus ? scrape1[i].subscriptions : null,
      bus_published: bus ? scrape1[i].published - scrape0[i].published : null,
      bus_received: bus ? scrape1[i].received - scrape0[i].received : null,
    })),
  };
}

/** One step's figures. */
export type StepFigures = Awaited<ReturnType<typeof measureStep>>;
