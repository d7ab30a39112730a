/**
 * V8's `--trace-gc` lines, read from a server's stdout and tallied per phase of a run (idle,
 * opening, a load step): how many collections of each kind, and the longest main-thread pause.
 *
 * A line looks like (Deno 2.9.6, V8 15.0):
 *   [pid:0x…]  5123 ms: Scavenge 41.2 (52.1) -> 38.0 (52.1) MB, pooled: 0.0 MB, 3.12 / 0.00 ms …
 *   [pid:0x…]  9876 ms: Incremental Mark-Compact 95.1 (112.3) -> 73.2 (101.1) MB, pooled: 0 MB,
 *     46.48 / 0.00 ms (+ 0.5 ms in 39 steps since start of marking, biggest step 0.1 ms, walltime
 *     since start of marking 51 ms) (average mu = …, current mu = …) finalize incremental …
 * The first of the "X / Y ms" figures is the pause the main thread stood still for (the atomic
 * part); an incremental mark-compact also did its marking in steps interleaved with the program
 * before it, each step a short pause of its own ("biggest step"), reported apart here. A full
 * collection asked for from outside (the bench's own through the inspector, `gc()`) is "forced"
 * and kept apart, so it never passes for one the program caused. The marking between the steps
 * also runs on V8's helper threads, which share the server's one pinned core.
 */

/** One collection, as its trace line tells it. */
export interface GcEvent {
  /** "Scavenge", "Minor Mark-Sweep", "Mark-Compact", "Incremental Mark-Compact", … */
  kind: string;
  /** Main-thread pause of the collection itself (its atomic part), ms. */
  pauseMs: number;
  /** For an incremental mark: the marking steps before it (total ms, count, longest ms). */
  steps: { totalMs: number; count: number; longestMs: number; wallMs: number } | null;
  /** Why it ran (V8's words: "allocation failure", "finalize incremental marking …"). */
  reason: string;
  /** Asked for from outside the program (the bench's GC through the inspector, `gc()`). */
  forced: boolean;
}

const LINE =
  /\d+ ms: (.+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms (.*)$/;
const STEPS =
  /^\(\+ ([\d.]+) ms in (\d+) steps since start of marking, biggest step ([\d.]+) ms, walltime since start of marking (\d+) ms/;
const REASON = /current mu = [\d.]+\) (.*?);?\s*$/;
/** Reasons V8 gives a collection someone asked for (the inspector, `gc()`, a heap snapshot). */
const FORCED = /testing|heap profiler|external memory pressure|low memory notification|debugger/;

/** Parses one trace line, or answers null for any other line. */
export function parseGcLine(line: string): GcEvent | null {
  const m = LINE.exec(line);
  if (!m) return null;
  const steps = STEPS.exec(m[3]);
  const reason = REASON.exec(m[3])?.[1] ?? "";
  return {
    kind: m[1],
    pauseMs: Number(m[2]),
    steps: steps
      ? {
        totalMs: Number(steps[1]),
        count: Number(steps[2]),
        longestMs: Number(steps[3]),
        wallMs: Number(steps[4]),
      }
      : null,
    reason,
    forced: FORCED.test(reason),
  };
}

/** What one kind of collection came to in one phase. */
export interface GcTally {
  count: number;
  /** The longest main-thread pause, and the sum of them all (ms). */
  longest_pause_ms: number;
  total_pause_ms: number;
  /** Incremental marking only: the longest single step and the steps' sum (ms). */
  longest_marking_step_ms?: number;
  marking_steps_ms?: number;
}

/** A collection as it came, timed from the start of its phase. */
export interface GcMoment {
  /** When its line came, seconds after its phase began. */
  at_s: number;
  kind: string;
  pause_ms: number;
  /** Incremental marking: how long the marking ran (wall time) before this pause, and its steps. */
  marking_wall_ms?: number;
  marking_steps_ms?: number;
}

/** Collections tallied per phase; `phase` moves the tally on (lines go to the current phase). */
export class GcTrace {
  #phase = "start";
  #phaseFrom = performance.now();
  readonly #phases = new Map<string, Map<string, GcTally>>();
  readonly #moments = new Map<string, GcMoment[]>();

  /** From now on, collections count for `name`. */
  phase(name: string): void {
    this.#phase = name;
    this.#phaseFrom = performance.now();
  }

  /**
   * Each collection of one phase in order, with when it came: lined up with the latencies by
   * second, it shows whether a slow second was a collection (the marking runs beside the program,
   * on the same core when the process is pinned to one).
   */
  moments(phase: string): GcMoment[] {
    return this.#moments.get(phase) ?? [];
  }

  /** Takes one line of the server's output; answers whether it was a GC trace line. */
  line(text: string): boolean {
    const e = parseGcLine(text);
    if (!e) return false;
    let kinds = this.#phases.get(this.#phase);
    if (!kinds) this.#phases.set(this.#phase, kinds = new Map());
    const key = e.forced ? `forced ${e.kind}` : e.kind;
    let t = kinds.get(key);
    if (!t) kinds.set(key, t = { count: 0, longest_pause_ms: 0, total_pause_ms: 0 });
    t.count++;
    if (!this.#moments.has(this.#phase)) this.#moments.set(this.#phase, []);
    this.#moments.get(this.#phase)!.push({
      at_s: Math.round((performance.now() - this.#phaseFrom) / 100) / 10,
      kind: key,
      pause_ms: e.pauseMs,
      ...(e.steps ? { marking_wall_ms: e.steps.wallMs, marking_steps_ms: e.steps.totalMs } : {}),
    });
    t.longest_pause_ms = Math.max(t.longest_pause_ms, e.pauseMs);
    t.total_pause_ms = Math.round((t.total_pause_ms + e.pauseMs) * 100) / 100;
    if (e.steps) {
      t.longest_marking_step_ms = Math.max(t.longest_marking_step_ms ?? 0, e.steps.longestMs);
      t.marking_steps_ms = Math.round(((t.marking_steps_ms ?? 0) + e.steps.totalMs) * 100) / 100;
    }
    return true;
  }

  /** The tallies of one phase by kind ({} when no collection ran in it). */
  summary(phase: string): Record<string, GcTally> {
    return Object.fromEntries(this.#phases.get(phase) ?? []);
  }

  /** Every phase's tallies, in the order the phases came. */
  all(): Record<string, Record<string, GcTally>> {
    return Object.fromEntries([...this.#phases].map(([p, k]) => [p, Object.fromEntries(k)]));
  }
}
