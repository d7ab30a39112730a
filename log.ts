/**
 * Structured logging: one JSON line per entry on stderr. Callers pass facts, never credentials;
 * as a second guard, fields whose names look secret are redacted, and credentials inside URLs
 * (`scheme://user:password@`) are taken out of every text, before anything is written.
 */

/** Severity, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SECRET_FIELD = /token|secret|password|authorization|cookie|private|p256dh|auth_key/i;

/** A logger; `with` returns one that adds fields to every entry. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  with(fields: Record<string, unknown>): Logger;
}

/** The user-info part of a URL (`postgres://user:password@host`), wherever it stands in a text. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/'"@]*(?:@[^\s/'"@]*)*@/gi;

/**
 * A text with every URL's credentials taken out (`postgres://…@host`). A driver's error message
 * may repeat the URL it was given (postgres.js does for one it cannot parse), password and all.
 */
export function withoutCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, "$1…@");
}

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k)) out[k] = "[redacted]";
    else if (v instanceof Error) {
      out[k] = { name: v.name, message: withoutCredentials(v.message) };
    } else if (typeof v === "string") out[k] = withoutCredentials(v);
    else out[k] = v;
  }
  return out;
}

/** Creates a logger writing entries at `level` and above. */
export function createLogger(level: Level = "info", base: Record<string, unknown> = {}): Logger {
  const write = (at: Level, message: string, fields?: Record<string, unknown>) => {
    if (RANK[at] < RANK[level]) return;
    const entry = {
      time: new Date().toISOString(),
      level: at,
      message: withoutCredentials(message),
      ...redact({ ...base, ...fields }),
    };
    console.error(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    with: (fields) => createLogger(level, { ...base, ...fields }),
  };
}

/** A logger that writes nothing (tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with: () => silentLogger,
};

/** What an Episode says, and when a burst counts as over. */
export interface EpisodeOptions {
  /** Logged (at `level`) when the condition first occurs. */
  began: string;
  /** Logged (info) when it is over, with how many times it occurred. */
  ended: string;
  level?: "warn" | "error";
  /**
   * A burst is over after this long without an occurrence. Without it, only `resolved()` ends
   * the episode (a condition with a known way out, e.g. a write that succeeds again).
   */
  quietMs?: number;
}

/**
 * A condition that may recur many times a second (a refused stream, a write to a full disk),
 * logged once when it begins and once when it ends — never once per request, so a flood cannot
 * flood the log too.
 */
export class Episode {
  #count = 0;
  #quiet: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly log: Logger, readonly options: EpisodeOptions) {}

  /** Whether the condition is current. */
  get active(): boolean {
    return this.#count > 0;
  }

  /** One occurrence: the first of an episode is logged with `fields`. */
  occurred(fields?: Record<string, unknown>): void {
    if (this.#count++ === 0) this.log[this.options.level ?? "warn"](this.options.began, fields);
    const quietMs = this.options.quietMs;
    if (quietMs === undefined) return;
    clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => this.resolved(), quietMs);
    // Waiting for quiet must not keep the process (or a test) alive.
    Deno.unrefTimer(this.#quiet as unknown as number);
  }

  /** The condition is over: logged once, with how many times it occurred. */
  resolved(): void {
    clearTimeout(this.#quiet);
    if (this.#count === 0) return;
    this.log.info(this.options.ended, { occurrences: this.#count });
    this.#count = 0;
  }
}
