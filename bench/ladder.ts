/**
 * One target's measurement: memory per idle stream first, then a ladder of rates on the same open
 * streams, stopping after the first step that saturates. Each step prints one JSON line (for
 * pasting into bench/README.md); the target ends with a human table and a summary line.
 */
import { awaitDeliveries, Deliveries, type Sink } from "./deliveries.ts";
import { collectGarbage, cpuTimes, rssKb, treeCpuMicros } from "./procs.ts";
import { Sender } from "./sender.ts";
import type { Target } from "./targets.ts";

/** A step saturates below this share of its target rate, or above this p99. */
export const SATURATED_BELOW = 0.9;
export const SATURATED_P99_MS = 1000;
/** "Held": p99 under this, nothing lost, doubled or refused, and not saturated. */
export const HELD_P99_MS = 100;

/** How the ladder is run. */
export interface LadderOptions {
  rates: number[];
  seconds: number;
  devicesPerUser: number;
  connections: number;
  batch: number;
  /** After sending ends: how long queued reports may wait for a connection. */
  drainSeconds: number;
  gc: boolean;
  /**
   * An unmeasured step first (reports/s and seconds; 0 s for none), so that every user's caches
   * are filled and the JIT has done its work before anything is measured, as on a server that
   * has been up for a while.
   */
  warmup: { rate: number; seconds: number };
  /** CPU µs so far of the target's Postgres, when it has one. */
  postgresCpu: (() => number) | null;
  extra: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, places = 1) => Number.isFinite(x) ? +x.toFixed(places) : null;

/** Server RSS in KB, after a full GC when the inspector is there. */
async function settledRss(target: Target, gc: boolean): Promise<number> {
  if (gc && target.inspectPort) await collectGarbage(target.inspectPort);
  return rssKb(target.pid);
}

/** Runs the idle measurement and the ladder; answers the step lines. */
export async function runLadder(target: Target, o: LadderOptions) {
  const sink: Sink = { current: null };
  const common = { target: target.name, date: new Date().toISOString(), ...o.extra };
  await sleep(1000);
  const rssBefore = await settledRss(target, o.gc);
  const opening = performance.now();
  const streams = await target.openStreams(sink);
  const openSeconds = (performance.now() - opening) / 1000;
  const idleCpu = target.cpuMicros();
  const idleFrom = performance.now();
  await sleep(3000);
  const idleCpuPercent = (target.cpuMicros() - idleCpu) / ((performance.now() - idleFrom) * 10);
  const rssIdle = await settledRss(target, o.gc);
  const open = streams.count();
  const idle = {
    kind: "idle",
    ...common,
    streams: open,
    opened_in_s: round(openSeconds),
    server_rss_mb_before: round(rssBefore / 1024),
    server_rss_mb_idle: round(rssIdle / 1024),
    server_kb_per_idle_stream: round((rssIdle - rssBefore) / open),
    server_cpu_percent_idle: round(idleCpuPercent),
    gc_before_rss: o.gc,
  };
  console.log(JSON.stringify(idle));

  const sender = new Sender(
    "127.0.0.1",
    target.port,
    target.ingestPath,
    target.ingestHeaders,
    o.connections,
  );
  const steps = [];
  try {
    if (o.warmup.seconds > 0) await warmUp(target, sender, sink, o);
    for (const [i, rate] of o.rates.entries()) {
      const step = i + 1;
      console.error(`${target.name}: step ${step}, ${rate} reports/s for ${o.seconds} s`);
      const d = new Deliveries(step, Math.ceil(rate * o.seconds) + 1, o.devicesPerUser);
      sink.current = d;
      const cpu0 = {
        server: target.cpuMicros(),
        pg: o.postgresCpu?.() ?? 0,
        self: treeCpuMicros("self"),
        cpus: cpuTimes(),
      };
      const t0 = performance.now();
      const sent = await sender.run({
        rate,
        seconds: o.seconds,
        batch: o.batch,
        drainSeconds: o.drainSeconds,
        report: (n, at) => target.report(step, n, at),
      });
      const expected = sent.accepted * o.devicesPerUser;
      await awaitDeliveries(d, expected);
      const wall = (performance.now() - t0) / 1000;
      const per = (us: number) => sent.accepted ? round(us / sent.accepted, 0) : null;
      const serverUs = target.cpuMicros() - cpu0.server;
      const pgUs = o.postgresCpu ? o.postgresCpu() - cpu0.pg : NaN;
      const lat = d.percentiles();
      const selfUs = treeCpuMicros("self") - cpu0.self;
      // Whatever else ran on each CPU meanwhile (other processes on the box): a step is only as
      // clean as these are small, since the pinning keeps our processes apart, not others out.
      const busy = cpuTimes().map((c, i) => c.busy - cpu0.cpus[i].busy);
      const others = [
        round((busy[0] - serverUs - (o.postgresCpu ? pgUs : 0)) / (wall * 1e4)),
        round((busy[1] - selfUs) / (wall * 1e4)),
      ];
      const achieved = sent.accepted / sent.seconds;
      const line = {
        kind: "step",
        ...common,
        date: new Date().toISOString(),
        step,
        streams: open,
        batch: o.batch,
        connections: o.connections,
        rate_target: rate,
        rate_achieved: Math.round(achieved),
        reports_sent: sent.sent,
        reports_accepted: sent.accepted,
        reports_refused: sent.refused,
        reports_unsent: sent.unsent,
        deliveries_expected: expected,
        delivered: d.received,
        lost: expected - d.received,
        duplicates: d.duplicates,
        out_of_order: target.name === "socketio" ? null : d.outOfOrder,
        late_from_earlier_step: d.late,
        foreign: d.foreign,
        latency_ms: { p50: lat.p50, p90: lat.p90, p99: lat.p99, max: lat.max },
        p99_ms_by_second: d.p99BySecond(),
        server_cpu_us_per_report: per(serverUs),
        postgres_cpu_us_per_report: o.postgresCpu ? per(pgUs) : null,
        server_cpu_percent: round(serverUs / (wall * 1e4)),
        postgres_cpu_percent: o.postgresCpu ? round(pgUs / (wall * 1e4)) : null,
        generator_cpu_percent: round(selfUs / (wall * 1e4)),
        other_load_percent_cpu0_cpu1: others,
        server_rss_mb: round(rssKb(target.pid) / 1024),
        measured_s: round(wall),
        saturated: achieved < rate * SATURATED_BELOW || !(lat.p99 <= SATURATED_P99_MS),
      };
      console.log(JSON.stringify(line));
      steps.push(line);
      sink.current = null;
      if (line.saturated) break;
      await sleep(2000);
    }
  } finally {
    sender.close();
    streams.close();
  }
  const held = steps.filter((s) =>
    !s.saturated && s.lost === 0 && s.duplicates === 0 && s.reports_unsent === 0 &&
    Object.keys(s.reports_refused).length === 0 && s.latency_ms.p99 < HELD_P99_MS
  );
  const summary = {
    kind: "summary",
    ...common,
    kb_per_idle_stream: idle.server_kb_per_idle_stream,
    highest_rate_held_p99_under_100ms: held.length
      ? Math.max(...held.map((s) => s.rate_target))
      : null,
    saturated_at: steps.find((s) => s.saturated)?.rate_target ?? null,
  };
  printTable(target.name, idle, steps);
  console.log(JSON.stringify(summary));
  return { idle, steps, summary };
}

/** The unmeasured step 0: sends, waits for its deliveries, prints one line, then rests 2 s. */
async function warmUp(target: Target, sender: Sender, sink: Sink, o: LadderOptions) {
  const { rate, seconds } = o.warmup;
  console.error(`${target.name}: warm-up, ${rate} reports/s for ${seconds} s (not measured)`);
  const d = new Deliveries(0, Math.ceil(rate * seconds) + 1, o.devicesPerUser);
  sink.current = d;
  const sent = await sender.run({
    rate,
    seconds,
    batch: o.batch,
    drainSeconds: o.drainSeconds,
    report: (n, at) => target.report(0, n, at),
  });
  const expected = sent.accepted * o.devicesPerUser;
  for (let i = 0; i < 100 && d.received < expected; i++) await sleep(100);
  console.log(JSON.stringify({
    kind: "warmup",
    target: target.name,
    rate_target: rate,
    seconds,
    reports_accepted: sent.accepted,
    delivered: d.received,
    deliveries_expected: expected,
    latency_ms: d.percentiles(),
  }));
  sink.current = null;
  await sleep(2000);
}

type Step = Awaited<ReturnType<typeof runLadder>>["steps"][number];

function printTable(
  name: string,
  idle: { streams: number; server_kb_per_idle_stream: number | null },
  steps: Step[],
) {
  const n = (x: number | null | undefined) =>
    x === null || x === undefined ? "—" : x.toLocaleString("en-US");
  const rows = steps.map((s) => [
    `${n(s.rate_target)} → ${n(s.rate_achieved)}`,
    `${n(s.delivered)} / ${n(s.deliveries_expected)}`,
    `${n(s.lost)} / ${n(s.duplicates)} / ${n(s.out_of_order)}`,
    [s.latency_ms.p50, s.latency_ms.p90, s.latency_ms.p99, s.latency_ms.max].map(n).join(" / "),
    `${n(s.server_cpu_us_per_report)} / ${n(s.postgres_cpu_us_per_report)}`,
    `${n(s.generator_cpu_percent)} %`,
    `${s.other_load_percent_cpu0_cpu1.map(n).join(" / ")} %`,
    n(s.server_rss_mb),
    s.saturated ? "yes" : "no",
  ]);
  const head = [
    "reports/s target → achieved",
    "delivered / expected",
    "lost / dup / out-of-order",
    "p50 / p90 / p99 / max ms",
    "CPU µs/report server / PG",
    "generator CPU",
    "other load CPU 0 / 1",
    "server RSS MB",
    "saturated",
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(
    `\n${name}: ${n(idle.streams)} streams, ${
      n(idle.server_kb_per_idle_stream)
    } KB per idle stream`,
  );
  console.log(fmt(head));
  console.log(fmt(widths.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(fmt(r));
  console.log();
}
