/**
 * The heartbeat of every open stream and socket from one timer: streams are spread over slices,
 * and each tick beats one slice, so every stream gets one heartbeat per interval while no tick
 * writes to all of them (at 5,000 streams one tick for all blocked the event loop for ~100 ms
 * every interval, and every report arriving meanwhile waited that long: the bench's p99).
 */

/** Calls `tick` every `ms` until the function it answers is called. */
export type Ticker = (ms: number, tick: () => void) => () => void;

/** The real clock: an interval that alone does not keep the process (or a test) alive. */
export const intervalTicker: Ticker = (ms, tick) => {
  const timer = setInterval(tick, ms);
  Deno.unrefTimer(timer as unknown as number);
  return () => clearInterval(timer);
};

/**
 * How often the timer ticks at most (an interval under 1 s ticks ten times in it, one over 15 s
 * every interval/150).
 */
const HEARTBEAT_TICK_MS = 100;
/** At most this many slices (a long interval ticks less often instead of holding more). */
const MAX_HEARTBEAT_SLICES = 150;

/** Something that beats: one open stream or socket. */
export interface Beating {
  heartbeat(): void;
}

/** The sliced heartbeat of a set of streams. */
export class Heartbeat<T extends Beating> {
  /** The streams in slices (one beaten per tick), and where the next one goes. */
  readonly #slices: Array<Set<T>> = [];
  #next = 0;
  readonly #stop: () => void;

  constructor(every: number, ticker: Ticker = intervalTicker) {
    const finest = Math.max(1, Math.min(HEARTBEAT_TICK_MS, Math.floor(every / 10)));
    const count = Math.max(1, Math.min(MAX_HEARTBEAT_SLICES, Math.floor(every / finest)));
    // count × tick ≤ every: no stream waits longer than the interval for its heartbeat.
    const tick = Math.max(1, Math.floor(every / count));
    for (let i = 0; i < count; i++) this.#slices.push(new Set());
    let due = 0;
    this.#stop = ticker(tick, () => {
      for (const s of this.#slices[due]) s.heartbeat();
      due = (due + 1) % count;
    });
  }

  /** Adds a stream to the next slice; returns its removal. */
  add(stream: T): () => void {
    const slice = this.#slices[this.#next++ % this.#slices.length];
    slice.add(stream);
    return () => slice.delete(stream);
  }

  /** Stops the timer. */
  stop(): void {
    this.#stop();
  }
}
