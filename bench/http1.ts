/**
 * A lean HTTP/1.1 keep-alive client for the venue's POSTs: one TCP connection, one request in
 * flight, request bytes written as one buffer and the answer read with a minimal parser (status
 * line, Content-Length or chunked body). Hand-written because node:http's client costs ~150 µs of
 * the generator's CPU per request here, which would make the generator saturate before the server
 * at a few thousand reports/s; this costs a fraction of that.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];

function indexOf(buf: Uint8Array, end: number, seq: number[], from = 0): number {
  outer: for (let i = from; i <= end - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (buf[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

/** One keep-alive connection that POSTs JSON to `path`. */
export class Http1Connection {
  #conn: Deno.TcpConn | null = null;
  #buf = new Uint8Array(64 * 1024);
  #len = 0;
  readonly #head: string;

  constructor(
    readonly host: string,
    readonly port: number,
    path: string,
    headers: Record<string, string>,
  ) {
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    this.#head = `POST ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\n` +
      `content-type: application/json\r\n${extra}content-length: `;
  }

  /** POSTs `body`; answers the status ("error" when the connection failed) and the answer. */
  async post(body: string, timeoutMs = 30_000): Promise<{ status: string; text: string }> {
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      if (!this.#conn) {
        this.#conn = await Deno.connect({ hostname: this.host, port: this.port });
        this.#conn.setNoDelay(true);
        this.#len = 0;
      }
      const b = encoder.encode(body);
      const h = encoder.encode(`${this.#head}${b.length}\r\n\r\n`);
      const req = new Uint8Array(h.length + b.length);
      req.set(h);
      req.set(b, h.length);
      for (let off = 0; off < req.length;) off += await this.#conn.write(req.subarray(off));
      return await this.#readAnswer();
    } catch (err) {
      // The request is lost to this connection; the next post reconnects. Counted as "error".
      if (!(err instanceof Deno.errors.BadResource)) console.error(`venue connection: ${err}`);
      this.close();
      return { status: "error", text: "" };
    } finally {
      clearTimeout(timer);
    }
  }

  async #fill(): Promise<void> {
    if (this.#len === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
    }
    const n = await this.#conn!.read(this.#buf.subarray(this.#len));
    if (n === null) throw new Error("connection closed by the server");
    this.#len += n;
  }

  async #readAnswer(): Promise<{ status: string; text: string }> {
    let headEnd: number;
    while ((headEnd = indexOf(this.#buf, this.#len, CRLFCRLF)) < 0) await this.#fill();
    const head = decoder.decode(this.#buf.subarray(0, headEnd)).toLowerCase();
    const status = head.slice(9, 12);
    const bodyStart = headEnd + 4;
    let bodyEnd: number;
    let text: string;
    const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
    if (cl) {
      bodyEnd = bodyStart + Number(cl[1]);
      while (this.#len < bodyEnd) await this.#fill();
      text = decoder.decode(this.#buf.subarray(bodyStart, bodyEnd));
    } else if (/\r\ntransfer-encoding:\s*chunked/.test(head)) {
      // Chunks: "<hex size>\r\n<data>\r\n", ended by a zero-size chunk and an empty line.
      let at = bodyStart;
      const parts: Uint8Array[] = [];
      for (;;) {
        let eol: number;
        while ((eol = indexOf(this.#buf, this.#len, [13, 10], at)) < 0) await this.#fill();
        const size = parseInt(decoder.decode(this.#buf.subarray(at, eol)), 16);
        while (this.#len < eol + 2 + size + 2) await this.#fill();
        if (size === 0) {
          bodyEnd = eol + 4;
          break;
        }
        parts.push(this.#buf.slice(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      text = parts.map((p) => decoder.decode(p)).join("");
    } else {
      bodyEnd = bodyStart; // no body (204, or a 1xx we do not expect)
      text = "";
    }
    this.#buf.copyWithin(0, bodyEnd, this.#len);
    this.#len -= bodyEnd;
    if (/\r\nconnection:\s*close/.test(head)) this.close();
    return { status, text };
  }

  close(): void {
    try {
      this.#conn?.close();
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err; // closed already
    }
    this.#conn = null;
  }
}
