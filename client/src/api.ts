/**
 * The client's HTTP side: one authenticated call (a 401 asks for the token once more; a refusal
 * becomes a BlotterError), the whole order list at one position, and the small helpers both need.
 */
import { BlotterError, type ClientOptions, type Order } from "./types.ts";

/** One page of `GET /api/v1/orders`. */
interface ListPage {
  orders: Order[];
  next_cursor: string | null;
  last_event_id: string | null;
}

/** Orders read per page of the list. */
const PAGE = 200;

/** Calls Blotter's JSON API as the client's user. */
export class Api {
  readonly #fetch: typeof fetch;

  constructor(private readonly o: ClientOptions) {
    this.#fetch = o.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The fetch the client was given (the stream uses it too). */
  get fetch(): typeof fetch {
    return this.#fetch;
  }

  /** The token now: as given, or asked of the function. */
  async token(): Promise<string | null> {
    const t = this.o.token;
    return t === undefined ? null : typeof t === "string" ? t : await t();
  }

  /** One call; the parsed JSON answer, or a BlotterError. */
  async call<T = Order>(method: string, path: string, body?: unknown): Promise<T> {
    for (let again = true;; again = false) {
      const token = await this.token();
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      let res: Response;
      try {
        res = await this.#fetch(`${this.o.baseUrl}${path}`, {
          method,
          headers,
          credentials: "include",
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
      } catch (err) {
        throw new BlotterError(0, "network", (err as Error).message ?? "the network failed");
      }
      const text = await res.text().catch(() => "");
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        // Not Blotter's answer (a proxy's error page): the status still says what happened.
      }
      if (res.ok) return json as T;
      // A 401 asks for the token once more (it may have just expired).
      if (res.status === 401 && again && typeof this.o.token === "function") continue;
      const retry = Number(res.headers.get("retry-after")) || undefined;
      const { code = "error", message = res.statusText } = json?.error ?? {};
      throw new BlotterError(res.status, code, message, retry);
    }
  }

  /**
   * Every page of the list, all statuses (an order that ended must leave "open" too), with the
   * first page's `last_event_id`: read together with its rows, every event up to it is in them.
   */
  async list(): Promise<{ orders: Order[]; lastEventId: string | null }> {
    const orders: Order[] = [];
    let cursor: string | null = null, lastEventId: string | null | undefined;
    do {
      const q: string = `status=all&limit=${PAGE}` +
        (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
      const page: ListPage = await this.call<ListPage>("GET", `/api/v1/orders?${q}`);
      if (lastEventId === undefined) lastEventId = page.last_event_id;
      orders.push(...page.orders);
      cursor = page.next_cursor;
    } while (cursor);
    return { orders, lastEventId: lastEventId ?? null };
  }
}

/** A random UUID (React Native has no `crypto.randomUUID` unless polyfilled). */
export function uuid(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return "10000000-1000-4000-8000-100000000000".replace(
    /[018]/g,
    (d) => (Number(d) ^ (Math.random() * 16) >> (Number(d) / 4)).toString(16),
  );
}

/** A JWT's `exp` in ms, or null (not a JWT, or none). */
export function expiryOf(token: string | null): number | null {
  try {
    const part = token?.split(".")[1];
    if (!part) return null;
    const exp = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** Named timers, one of each name at a time. */
export class Timers {
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();

  /** Runs `fn` after `ms`, replacing the timer of that name. */
  after(name: string, ms: number, fn: () => void): void {
    this.clear(name);
    this.#timers.set(name, setTimeout(() => (this.#timers.delete(name), fn()), ms));
  }

  /** Whether a timer of that name is waiting. */
  pending(name: string): boolean {
    return this.#timers.has(name);
  }

  clear(name: string): void {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }

  /** Clears every timer but `keep`'s. */
  clearAll(keep?: string): void {
    for (const name of [...this.#timers.keys()]) if (name !== keep) this.clear(name);
  }
}
