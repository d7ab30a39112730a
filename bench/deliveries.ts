/**
 * What the devices received, checked against what was sent: every device of a user must receive
 * each of the user's events exactly once, in order. Report number n of a step goes to user
 * n % users; its exec_id is `x<step>-<n>` and its `at` is its send time, which comes back as the
 * event's `execution.at`, so latency is read off the event itself when a device reads it.
 */

/** Reports' exec_ids: `x<step>-<n>` ("x" is not a hex digit, so it never starts an order id). */
export function execId(step: number, n: number): string {
  return `x${step}-${n}`;
}

/** One step's tally of deliveries. */
export class Deliveries {
  readonly counts: Uint8Array;
  readonly latencies: Float64Array;
  /** When each received report was sent (its `at`, epoch ms), in the order of `latencies`. */
  readonly sentAt: Float64Array;
  received = 0;
  duplicates = 0;
  outOfOrder = 0;
  /** Events of an earlier step that arrived during this one. */
  late = 0;
  /** Events the bench did not send (or could not read). */
  foreign = 0;

  constructor(
    readonly step: number,
    readonly capacity: number,
    readonly devicesPerUser: number,
  ) {
    this.counts = new Uint8Array(capacity * devicesPerUser);
    this.latencies = new Float64Array(capacity * devicesPerUser);
    this.sentAt = new Float64Array(capacity * devicesPerUser);
  }

  /** Device `slot` (0..devicesPerUser-1) of its user read report `exec` stamped `atMs`. */
  record(slot: number, exec: string, atMs: number, now: number, inOrder: boolean): void {
    const dash = exec.indexOf("-");
    const step = Number(exec.slice(1, dash));
    const n = Number(exec.slice(dash + 1));
    if (exec[0] !== "x" || !Number.isInteger(n) || n >= this.capacity) {
      this.foreign++;
      return;
    }
    if (step !== this.step) {
      if (step < this.step) this.late++;
      else this.foreign++;
      return;
    }
    const i = n * this.devicesPerUser + slot;
    if (this.counts[i]++ > 0) {
      this.duplicates++;
      return;
    }
    if (!inOrder) this.outOfOrder++;
    this.sentAt[this.received] = atMs;
    this.latencies[this.received++] = now - atMs;
  }

  /**
   * p99 of sent → received (ms) for each second of the step, by send time: whether a step's tail
   * is spread over it or is one stall (a GC, a checkpoint, a heartbeat tick) shows here.
   */
  p99BySecond(): number[] {
    if (this.received === 0) return [];
    let first = Infinity;
    for (let i = 0; i < this.received; i++) first = Math.min(first, this.sentAt[i]);
    const buckets: number[][] = [];
    for (let i = 0; i < this.received; i++) {
      const b = Math.floor((this.sentAt[i] - first) / 1000);
      (buckets[b] ??= []).push(this.latencies[i]);
    }
    return Array.from(buckets, (xs) => {
      if (!xs) return NaN;
      xs.sort((a, b) => a - b);
      return xs[Math.min(xs.length - 1, Math.floor(0.99 * xs.length))];
    });
  }

  /** p50/p90/p99/max of sent → received, in ms. */
  percentiles(): { p50: number; p90: number; p99: number; max: number } {
    const sorted = this.latencies.slice(0, this.received).sort();
    const at = (p: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN;
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
  }
}

/**
 * Waits for the deliveries still on their way after a step: while they keep coming, until
 * `expected` arrived, at most 30 s, and no longer than 5 s without a single one.
 */
export async function awaitDeliveries(d: Deliveries, expected: number): Promise<void> {
  const from = performance.now();
  for (let last = -1, still = 0; d.received < expected && performance.now() - from < 30_000;) {
    await new Promise((r) => setTimeout(r, 100));
    still = d.received === last ? still + 1 : 0;
    last = d.received;
    if (still >= 50) break;
  }
}

/** Where a device's events go: the current step's tally, swapped between steps. */
export interface Sink {
  current: Deliveries | null;
}

/**
 * Records one event's delivery to a device: its execution found by string search in `json` (no
 * JSON.parse of the whole order snapshot: the `"execution":{...}` object is flat, so its `id` and
 * `at` lie before the next `}`), in order when its seq follows the device's last. Answers the
 * device's last seq now.
 */
function recordDelivery(d: Deliveries, slot: number, json: string, seq: number, lastSeq: number) {
  const x = json.indexOf('"execution":{');
  if (x < 0) return lastSeq; // status events and the like carry no execution
  const body = json.slice(x, json.indexOf("}", x));
  const idAt = body.indexOf('"id":"') + 6;
  const atAt = body.indexOf('"at":"') + 6;
  d.record(
    slot,
    body.slice(idAt, body.indexOf('"', idAt)),
    Date.parse(body.slice(atAt, body.indexOf('"', atAt))),
    Date.now(),
    lastSeq === 0 || seq === lastSeq + 1,
  );
  return Math.max(seq, lastSeq);
}

/** A reader for one device of Blotter's app socket: each text frame one message. */
export function socketReader(sink: Sink, slot: number): (text: string) => void {
  let lastSeq = 0;
  return (text) => {
    const d = sink.current;
    const e = text.indexOf('"event":{"id":"');
    if (!d || e < 0) return;
    lastSeq = recordDelivery(d, slot, text, Number.parseInt(text.slice(e + 15), 10), lastSeq);
  };
}

/**
 * A minimal SSE reader for one device of a Blotter JSON stream: lines, `id:` and `data:`, a blank
 * line ends an event; comments (`: ping`), `retry:` and `event:` are skipped.
 */
export function sseReader(sink: Sink, slot: number): (chunk: string) => void {
  let buf = "";
  let id = 0;
  let lastSeq = 0;
  let data = "";
  const dispatch = () => {
    const d = sink.current;
    if (d) lastSeq = recordDelivery(d, slot, data, id, lastSeq);
  };
  return (chunk) => {
    buf += chunk;
    let start = 0;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n", start)) {
      const line = buf.slice(start, nl);
      start = nl + 1;
      if (line === "") {
        if (data) dispatch();
        data = "";
      } else if (line.startsWith("data:")) data = line.slice(line[5] === " " ? 6 : 5);
      // The id is SEQ.TAG: the seq is what orders a user's events.
      else if (line.startsWith("id:")) id = Number.parseInt(line.slice(3), 10);
    }
    buf = buf.slice(start);
  };
}
