/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format for `GET /metrics`. Small enough not to earn a dependency; process and
 * event-loop metrics are added by process_metrics.ts (prom-client was measured: docs/tech-choices.md).
 */

type Labels = Record<string, string>;

/**
 * Each label set's series key, made once: a counter is bumped for every delivery to every stream,
 * and sorting and escaping its labels each time was a few µs per report. Label values come from
 * small fixed sets (status codes, formats, outcomes); past KEYS_KEPT sets, keys are made afresh.
 */
const keys = new Map<string, string>();
const KEYS_KEPT = 1_000;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  let raw = "";
  // Length-prefixed, so no two label sets can share a raw key whatever their values hold.
  for (const k in labels) raw += `${k.length}:${k}${labels[k].length}:${labels[k]}`;
  let key = keys.get(raw);
  if (key === undefined) {
    key = seriesKey(labels);
    if (keys.size < KEYS_KEPT) keys.set(raw, key);
  }
  return key;
}

function seriesKey(labels: Labels): string {
  const parts = Object.keys(labels).sort().map((k) =>
    `${k}="${labels[k].replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** A monotonically increasing count, per label set. */
export class Counter {
  readonly #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels?: Labels, by = 1): void {
    const key = labelKey(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }
  /** The current value of one series (tests read it). */
  value(labels?: Labels): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Prometheus text lines. */
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, v] of this.#values) lines.push(`${this.name}${key} ${v}`);
    return lines;
  }
}

/** What a scrape-time metric reads: one value, or one per label set. */
type Reading = number | ReadonlyArray<readonly [Labels, number]>;

/**
 * A metric whose value is read when scraped, from whatever keeps it (the heap, CPU seconds, a
 * store's own counts): a `gauge`, or a `counter` that something else counts.
 */
export class ReadMetric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "gauge" | "counter",
    readonly read: () => Reading,
  ) {}
  /** Prometheus text lines. */
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    const value = this.read();
    if (typeof value === "number") lines.push(`${this.name} ${value}`);
    else if (value.length === 0) lines.push(`${this.name} 0`);
    else for (const [labels, v] of value) lines.push(`${this.name}${seriesKey(labels)} ${v}`);
    return lines;
  }
}

/** A distribution in fixed buckets (upper bounds, in the metric's unit). */
export class Histogram {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.#counts = new Array(buckets.length).fill(0);
  }
  /** Records one observation. */
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]) {
        this.#counts[i]++;
        break;
      }
    }
  }
  /** How many observations so far. */
  get count(): number {
    return this.#count;
  }
  /** Prometheus text lines (cumulative buckets). */
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += this.#counts[i];
      lines.push(`${this.name}_bucket{le="${le}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines;
  }
}

/** The process's metrics, created once in main.ts and passed down. */
export class Metrics {
  readonly #all: Array<{ render(): string[] }> = [];

  /** Events sent, by `format`: json and html (the streams), socket (the app socket). */
  readonly eventsDelivered = this.counter(
    "blotter_events_delivered_total",
    "Events sent to streams and app sockets, by format",
  );
  /** Commit-to-write latency of delivered events, in seconds. */
  readonly deliveryLatency = this.histogram(
    "blotter_delivery_latency_seconds",
    "Time from an event's commit to its write on a stream",
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  /** Ingested reports by HTTP status. */
  readonly ingestResults = this.counter(
    "blotter_ingest_reports_total",
    "Execution reports received on the ingest API, by result status",
  );
  /** Streams closed, by reason. */
  readonly streamsClosed = this.counter("blotter_streams_closed_total", "SSE streams ended");
  /** Streams refused at the instance's cap (MAX_STREAMS), answered 503. */
  readonly streamsRefused = this.counter(
    "blotter_streams_refused_total",
    "New streams refused with 503: the instance holds MAX_STREAMS, or is short of open files",
  );
  /**
   * The listener's troubles, by `event`: accept_failed (the accept loop stopped, e.g. on EMFILE,
   * and was restarted), shed (connections without a request in progress closed to free
   * descriptors), head_timeout (a connection closed for sending no complete request in time),
   * refused_at_accept (node:http: a connection closed as accepted, past the descriptors' room).
   */
  readonly listenerEvents = this.counter(
    "blotter_listener_events_total",
    "Accept-loop restarts, connections shed under descriptor pressure, request-head timeouts",
  );
  /**
   * Push alerts by `platform` (web, fcm, apns) and `outcome`: sent, retried (one per retry
   * scheduled), token_deleted (the service said the target is gone), failed (refused, or out of
   * tries).
   */
  readonly pushes = this.counter(
    "blotter_push_total",
    "Push alerts by platform (web, fcm, apns) and outcome (sent, retried, token_deleted, failed)",
  );
  /**
   * Alert-worthy events by `outcome`: claimed (this instance sends its alerts), claimed_elsewhere
   * (another instance does), no_target (every device of the user was watching, or has none),
   * dropped_queue_full.
   */
  readonly pushEvents = this.counter(
    "blotter_push_events_total",
    "Alert-worthy events by outcome (claimed, claimed_elsewhere, no_target, dropped_queue_full)",
  );

  /** Registers a counter. */
  counter(name: string, help: string): Counter {
    const m = new Counter(name, help);
    this.#all.push(m);
    return m;
  }
  /** Registers a gauge read at scrape time. */
  gauge(name: string, help: string, read: () => number): ReadMetric {
    return this.register(new ReadMetric(name, help, "gauge", read));
  }
  /** Registers a counter read at scrape time (kept by something else), per label set or not. */
  readCounter(name: string, help: string, read: () => Reading): ReadMetric {
    return this.register(new ReadMetric(name, help, "counter", read));
  }
  /** Registers a histogram. */
  histogram(name: string, help: string, buckets: number[]): Histogram {
    const m = new Histogram(name, help, buckets);
    this.#all.push(m);
    return m;
  }
  /** Registers any other metric that renders its own lines (realtime/process_metrics.ts). */
  register<M extends { render(): string[] }>(metric: M): M {
    this.#all.push(metric);
    return metric;
  }
  /** The whole registry in Prometheus text format. */
  render(): string {
    return this.#all.flatMap((m) => m.render()).join("\n") + "\n";
  }
}
