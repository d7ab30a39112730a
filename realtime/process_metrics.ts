/**
 * What operators of a realtime server look at first: CPU, memory and event-loop lag, added to
 * the registry under the names Prometheus clients use (process_*), plus Deno's heap. Hand-written
 * because prom-client's own collectors do not measure under Deno (docs/tech-choices.md, Metrics):
 * its event-loop histogram missed 300 ms stalls and its GC histogram stayed empty. GC pauses are
 * not reported: Deno exposes no GC observer.
 */
import process from "node:process";
import type { Metrics } from "./metrics.ts";

/** How often the event loop is sampled; a stall shows up as a sample that fires this much late. */
const SAMPLE_EVERY_MS = 100;

/** The process metrics and the event-loop sampler; `stop()` ends the sampler's timer. */
export interface ProcessMetrics {
  stop(): void;
}

/** Registers process and runtime metrics on `metrics` and starts sampling event-loop lag. */
export function registerProcessMetrics(metrics: Metrics): ProcessMetrics {
  const startSeconds = Math.round(Date.now() / 1000 - performance.now() / 1000);
  const cpu = () => process.cpuUsage();
  metrics.readCounter(
    "process_cpu_user_seconds_total",
    "User CPU time spent",
    () => cpu().user / 1e6,
  );
  metrics.readCounter(
    "process_cpu_system_seconds_total",
    "System CPU time spent",
    () => cpu().system / 1e6,
  );
  metrics.readCounter("process_cpu_seconds_total", "User and system CPU time spent", () => {
    const { user, system } = cpu();
    return (user + system) / 1e6;
  });
  metrics.gauge(
    "process_start_time_seconds",
    "Start time of the process, Unix seconds",
    () => startSeconds,
  );
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident memory size",
    () => Deno.memoryUsage().rss,
  );
  metrics.gauge("deno_heap_used_bytes", "V8 heap in use", () => Deno.memoryUsage().heapUsed);
  metrics.gauge("deno_heap_total_bytes", "V8 heap reserved", () => Deno.memoryUsage().heapTotal);
  metrics.gauge(
    "deno_external_memory_bytes",
    "Memory held outside the V8 heap (buffers)",
    () => Deno.memoryUsage().external,
  );

  const lag = metrics.histogram(
    "deno_eventloop_lag_seconds",
    "How late a timer due every 100 ms fired: time the event loop was blocked",
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  );
  // A chain of timeouts, each due SAMPLE_EVERY_MS after the last fired: how late one fires is how
  // long the loop was busy (a setInterval would hide the lag in its own schedule).
  let timer: ReturnType<typeof setTimeout> | undefined;
  const sample = (due: number) => {
    timer = setTimeout(() => {
      const now = performance.now();
      lag.observe(Math.max(0, now - due) / 1000);
      sample(now + SAMPLE_EVERY_MS);
    }, SAMPLE_EVERY_MS);
    // A metrics timer must never keep the process alive on its own.
    Deno.unrefTimer(Number(timer)); // node:process's types make it a Timeout; in Deno, a number
  };
  sample(performance.now() + SAMPLE_EVERY_MS);
  return { stop: () => clearTimeout(timer) };
}
