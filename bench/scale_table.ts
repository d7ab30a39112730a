/**
 * The human tables of `deno task bench:scale` (bench/scale.ts): one row per configuration, then
 * one row per instance, in Markdown, ready for bench/README.md.
 */
import type { Configuration } from "./scale.ts";

const n = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? "—" : x.toLocaleString("en-US");

/** A Markdown table with padded columns. */
function markdown(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Prints the configurations' table (step 1, every user) and the instances' table. */
export function printTables(results: Configuration[]): void {
  const name = (c: Configuration) =>
    `${c.instances} × ${c.bus}${c.ingest === "dedicated" ? " + ingest" : ""}`;
  console.log(
    "\n" + markdown(
      [
        "instances × bus",
        "reports/s target → achieved",
        "lost / dup / out-of-order",
        "sent → received p50 / p99 ms",
        "ingest answer p50 / p99 ms",
        "CPU µs/report: instances Σ / Postgres / nats",
        "WAL syncs per report",
        "other load CPU 0 / 1",
      ],
      results.map((c) => [c, c.all] as const).map(([c, s]) => [
        name(c),
        `${n(s.rate_target)} → ${n(s.rate_achieved)}`,
        `${n(s.lost)} / ${n(s.duplicates)} / ${n(s.out_of_order)}`,
        `${n(s.latency_ms.p50)} / ${n(s.latency_ms.p99)}`,
        `${n(s.ingest_answer_ms.p50)} / ${n(s.ingest_answer_ms.p99)}`,
        [s.instances_cpu_us_per_report, s.postgres_cpu_us_per_report, s.nats_cpu_us_per_report]
          .map(n).join(" / "),
        n(s.wal_syncs_per_report),
        `${s.other_load_percent_cpu0_cpu1.map(n).join(" / ")} %`,
      ]),
    ),
  );
  console.log(
    "\n" + markdown(
      [
        "instances × bus",
        "instance",
        "users",
        "connections",
        "idle CPU %",
        "step 1: reports posted / of its users",
        "CPU %",
        "µs per report (all)",
        "µs per report of its users",
        "step 2 (instance 0's users only): µs per report",
        "fallback groups step 1 / 2",
        "bus: users / published / received",
      ],
      results.flatMap((c) =>
        c.all.per_instance.map((p, i) => [
          name(c),
          String(i),
          `${n(c.users_share_percent[i])} %`,
          n(c.connections[i]),
          n(c.idle_cpu_percent[i]),
          `${n(p.reports_posted)} / ${n(p.reports_of_own_users)}`,
          n(p.cpu_percent),
          n(p.cpu_us_per_report),
          n(p.cpu_us_per_own_report),
          n(c.only_instance_0_users?.per_instance[i].cpu_us_per_report),
          `${n(p.fallback_groups)} / ${
            n(c.only_instance_0_users?.per_instance[i].fallback_groups)
          }`,
          p.bus_subscriptions === null
            ? "—"
            : [p.bus_subscriptions, p.bus_published, p.bus_received].map(n).join(" / "),
        ])
      ),
    ) + "\n",
  );
}
