/**
 * The HTML stream's pacing: at most one message per window. Events that arrive within a window of
 * the last message wait for its end and go together (the page renders each order's latest state,
 * so a burst of fills costs one swap, not one per fill).
 */
import type { OrderEvent } from "../orders/model.ts";

/** Collects events and hands them on at most once per `windowMs`. */
export class Coalescer {
  #waiting: OrderEvent[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastFlush = 0;

  constructor(
    private readonly windowMs: number,
    private readonly flush: (events: OrderEvent[]) => void,
  ) {}

  /** Hands `events` on now if the window since the last message has passed, else at its end. */
  add(events: OrderEvent[]): void {
    this.#waiting.push(...events);
    const wait = this.#lastFlush + this.windowMs - Date.now();
    if (wait <= 0 && this.#timer === undefined) this.#flushNow();
    else this.#timer ??= setTimeout(() => this.#flushNow(), Math.max(wait, 0));
  }

  /** Hands on what is waiting at once and stops the timer (the stream is ending). */
  end(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#flushNow();
  }

  #flushNow(): void {
    this.#timer = undefined;
    if (this.#waiting.length === 0) return;
    const events = this.#waiting;
    this.#waiting = [];
    this.#lastFlush = Date.now();
    this.flush(events);
  }
}
