/** The client's events and who listens to them. */
import type { Listeners } from "./types.ts";

/** Listeners by kind; a listener that throws is the app's to see, and the others still hear. */
export class Emitter {
  readonly #listeners = new Map<keyof Listeners, Set<(...a: never[]) => void>>();

  /** Adds a listener; answers the function that removes it. */
  on<K extends keyof Listeners>(kind: K, listener: Listeners[K]): () => void {
    let set = this.#listeners.get(kind);
    if (!set) this.#listeners.set(kind, set = new Set());
    set.add(listener as never);
    return () => set.delete(listener as never);
  }

  emit<K extends keyof Listeners>(kind: K, ...args: Parameters<Listeners[K]>): void {
    for (const l of this.#listeners.get(kind) ?? []) {
      try {
        (l as (...a: unknown[]) => void)(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
