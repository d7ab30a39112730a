/**
 * The venue side of the load generator: reports at a fixed rate, one HTTP request per report
 * (or `batch` reports per request when asked), over `connections` keep-alive connections
 * (bench/http1.ts). The schedule is open-loop: a report is due at its time whether or not the
 * server has answered the previous ones, and its `at` is that time, so a report waiting for a free connection
 * counts its wait in the latency (no coordinated omission).
 */
import { Http1Connection } from "./http1.ts";

/** What one step's sending came to. */
export interface SendResult {
  sent: number;
  /** Reports answered 201 (applied; an event is owed to every device of the user). */
  accepted: number;
  /** Other answers by status, and "error" for a failed request. */
  refused: Record<string, number>;
  /** Reports still waiting for a connection when the drain time ran out (never sent). */
  unsent: number;
  /** Seconds from the first report due to the last answer. */
  seconds: number;
  /**
   * Each request's time from being written to its answer being read, in ms: for a 201, the
   * server's wait, its write and the commit (it answers only once the report is durable).
   */
  answerMs: number[];
}

/** The venue: `connections` keep-alive connections POSTing JSON to one path. */
export class Sender {
  readonly #conns: Http1Connection[];
  constructor(
    host: string,
    port: number,
    path: string,
    headers: Record<string, string>,
    readonly connections: number,
  ) {
    this.#conns = Array.from(
      { length: connections },
      () => new Http1Connection(host, port, path, headers),
    );
  }

  /**
   * Sends `rate` reports/s for `seconds`, report n built by `report(n, at)`; then waits up to
   * `drainSeconds` for the queue and the answers.
   */
  async run(opts: {
    rate: number;
    seconds: number;
    batch: number;
    drainSeconds: number;
    report: (n: number, at: string) => unknown;
  }): Promise<SendResult> {
    const queue: unknown[] = [];
    const result: SendResult = {
      sent: 0,
      accepted: 0,
      refused: {},
      unsent: 0,
      seconds: 0,
      answerMs: [],
    };
    const started = performance.now();
    const total = Math.round(opts.rate * opts.seconds);
    let made = 0;
    let stop = false;
    const idle: Array<() => void> = [];
    const wake = (n: number) => idle.splice(0, n).forEach((w) => w());
    let lastAnswer = started;
    const count = (status: string, n: number) => {
      if (status === "201") result.accepted += n;
      else result.refused[status] = (result.refused[status] ?? 0) + n;
    };

    const worker = async (conn: Http1Connection) => {
      while (!stop) {
        // A batch goes when it is full (its first report's wait counts in the latency).
        if (queue.length === 0 || (queue.length < opts.batch && made < total)) {
          if (made >= total && queue.length === 0) return;
          await new Promise<void>((r) => idle.push(r));
          continue;
        }
        const items = queue.splice(0, opts.batch);
        const body = JSON.stringify(opts.batch === 1 ? items[0] : items);
        result.sent += items.length;
        const written = performance.now();
        const { status, text } = await conn.post(body);
        lastAnswer = performance.now();
        result.answerMs.push(lastAnswer - written);
        if (opts.batch > 1 && status === "200") {
          // A batch answers 200 with a status per report.
          for (const r of JSON.parse(text).results) count(String(r.status), 1);
        } else count(status, items.length);
      }
    };
    const workers = this.#conns.map(worker);

    // The clock: enqueue what is due by now, then sleep until the next one is due.
    while (made < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * opts.rate));
      if (due > made) {
        const at = new Date().toISOString();
        while (made < due) queue.push(opts.report(made++, at));
        wake(Math.floor(queue.length / opts.batch));
      }
      // Sleep until the next report is due (timers fire no finer than ~1 ms anyway).
      const next = started + ((made + 1) / opts.rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(1, next - performance.now())));
    }
    wake(idle.length); // nothing more is coming: idle workers end
    const deadline = setTimeout(() => {
      stop = true;
      result.unsent = queue.length;
      queue.length = 0;
    }, opts.drainSeconds * 1000);
    await Promise.all(workers);
    clearTimeout(deadline);
    result.seconds = (lastAnswer - started) / 1000;
    return result;
  }

  close(): void {
    for (const c of this.#conns) c.close();
  }
}
