/**
 * The venue side of the load generator: reports at a fixed rate, one HTTP request per report
 * (or `batch` reports per request when asked), over `connections` keep-alive connections through
 * node:http. The schedule is open-loop: a report is due at its time whether or not the server has
 * answered the previous ones, and its `at` is that time, so a report waiting for a free connection
 * counts its wait in the latency (no coordinated omission).
 */
import { Buffer } from "node:buffer";
import http from "node:http";

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
}

/** A keep-alive POSTer of JSON bodies. */
export class Sender {
  readonly agent: http.Agent;
  constructor(
    readonly host: string,
    readonly port: number,
    readonly path: string,
    readonly headers: Record<string, string>,
    readonly connections: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  }

  /** POSTs one body; answers the status ("error" when the request failed) and the answer. */
  post(body: string, readBody: boolean): Promise<{ status: string; text: string }> {
    return new Promise((resolve) => {
      let text = "";
      const req = http.request({
        host: this.host,
        port: this.port,
        path: this.path,
        method: "POST",
        agent: this.agent,
        headers: {
          ...this.headers,
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(body)),
        },
      }, (res) => {
        if (readBody) res.setEncoding("utf8");
        res.on("data", (chunk: string) => readBody && (text += chunk));
        res.on("end", () => resolve({ status: String(res.statusCode), text }));
        res.on("error", () => resolve({ status: "error", text }));
      });
      req.setTimeout(30_000, () => req.destroy(new Error("no answer in 30 s")));
      req.on("error", () => resolve({ status: "error", text }));
      req.end(body);
    });
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
    const result: SendResult = { sent: 0, accepted: 0, refused: {}, unsent: 0, seconds: 0 };
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

    const worker = async () => {
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
        const { status, text } = await this.post(body, opts.batch > 1);
        lastAnswer = performance.now();
        if (opts.batch > 1 && status === "200") {
          // A batch answers 200 with a status per report.
          for (const r of JSON.parse(text).results) count(String(r.status), 1);
        } else count(status, items.length);
      }
    };
    const workers = Array.from({ length: this.connections }, worker);

    // The clock: every millisecond, enqueue what is due by now.
    while (made < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * opts.rate));
      if (due > made) {
        const at = new Date().toISOString();
        while (made < due) queue.push(opts.report(made++, at));
        wake(Math.floor(queue.length / opts.batch));
      }
      await new Promise((r) => setTimeout(r, 1));
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
    this.agent.destroy();
  }
}
