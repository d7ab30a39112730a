import assert from "node:assert/strict";
import { Metrics } from "../../realtime/metrics.ts";
import { registerProcessMetrics } from "../../realtime/process_metrics.ts";

/** The value of an unlabelled series in Prometheus text. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

Deno.test("/metrics carries the process's CPU, memory and start time beside Blotter's own", () => {
  const metrics = new Metrics();
  const processMetrics = registerProcessMetrics(metrics);
  try {
    const text = metrics.render();
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes"]) {
      assert.ok((sample(text, name) ?? 0) > 0, `${name} is not reported`);
    }
    assert.match(text, /# TYPE process_cpu_seconds_total counter/);
    assert.ok(Math.abs(sample(text, "process_start_time_seconds")! - Date.now() / 1000) < 3600);
    assert.ok((sample(text, "deno_heap_used_bytes") ?? 0) > 0);
    assert.match(text, /^blotter_events_delivered_total 0$/m, "the app's own metrics stay");
  } finally {
    processMetrics.stop();
  }
});

Deno.test("a blocked event loop shows up as event-loop lag", async () => {
  const metrics = new Metrics();
  const processMetrics = registerProcessMetrics(metrics);
  try {
    // Block for 300 ms: the sampler's next timer, due within 100 ms, fires at least 200 ms late.
    const until = performance.now() + 300;
    while (performance.now() < until) { /* busy on purpose */ }
    const over100ms = () => {
      const text = metrics.render();
      const all = sample(text, "deno_eventloop_lag_seconds_count") ?? 0;
      const upTo100ms = sample(text, 'deno_eventloop_lag_seconds_bucket{le="0.1"}') ?? 0;
      return all - upTo100ms;
    };
    const deadline = Date.now() + 10_000;
    while (over100ms() === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(over100ms() >= 1, "the 300 ms stall was not seen");
  } finally {
    processMetrics.stop();
  }
});
