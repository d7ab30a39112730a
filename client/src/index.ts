/**
 * Blotter's client library: the user's orders, live and exact, for any app that is not Blotter's
 * own page (the broker's web app, React Native, Node and Deno services). It loads the list, then
 * follows the user's events over the app socket (or the stream over `fetch`, or polling), applies
 * each once in seq order, reloads on a reset, a gap or a changed history, reconnects with backoff,
 * drops silent connections, refreshes credentials, and lets push take over in the background.
 * No runtime dependencies. CONTRACT.md, "The client library", fixes this API.
 */
import { Api, uuid } from "./api.ts";
import { Emitter } from "./events.ts";
import { Follow } from "./follow.ts";
import type {
  BlotterError,
  ClientOptions,
  ClientState,
  Listeners,
  Order,
  OrderRequest,
} from "./types.ts";
import { OrderView } from "./view.ts";

export * from "./types.ts";

/** One user's orders, followed live. */
export class BlotterClient {
  readonly #api: Api;
  readonly #view = new OrderView();
  readonly #events = new Emitter();
  readonly #follow: Follow;

  constructor(options: ClientOptions) {
    const o = { ...options, baseUrl: options.baseUrl.replace(/\/$/, "") };
    this.#api = new Api(o);
    this.#follow = new Follow(o, this.#api, this.#view, this.#events);
  }

  /** Listens to state changes, view changes or reloads; answers the function that stops it. */
  on<K extends keyof Listeners>(kind: K, listener: Listeners[K]): () => void {
    return this.#events.on(kind, listener);
  }

  /** The connection's state. */
  get state(): ClientState {
    return this.#follow.state;
  }

  /** The error that closed the client (credentials refused twice), for the app to show. */
  get error(): BlotterError | null {
    return this.#follow.error;
  }

  /** The id of the last event the view reflects, or null. */
  get lastEventId(): string | null {
    return this.#view.lastEventId;
  }

  /** Orders, newest first. */
  orders(filter: "open" | "closed" | "all" = "all"): Order[] {
    return this.#view.orders(filter);
  }

  /** One order, if the view has it. */
  order(id: string): Order | undefined {
    return this.#view.order(id);
  }

  /** Loads the first list (or the stored view) and goes live; resolves once the list is there. */
  start(): Promise<void> {
    return this.#follow.start();
  }

  /** Closes everything; the view stays readable. */
  stop(): Promise<void> {
    return this.#follow.stop();
  }

  /** In the background the live connection closes (push alerts take over); back, it resumes. */
  setForeground(foreground: boolean): void {
    this.#follow.setForeground(foreground);
  }

  /**
   * Places an order. Idempotent: a `client_order_id` is made when none is given, and a request
   * lost to the network is sent once more with the same one (the server answers the same order).
   */
  async place(request: OrderRequest): Promise<Order> {
    const body = { client_order_id: uuid(), ...request };
    try {
      return await this.#api.call("POST", "/api/v1/orders", body);
    } catch (err) {
      if ((err as BlotterError).status !== 0) throw err;
      return await this.#api.call("POST", "/api/v1/orders", body);
    }
  }

  /** Asks to cancel an order. */
  cancel(id: string): Promise<Order> {
    return this.#api.call("POST", `/api/v1/orders/${encodeURIComponent(id)}/cancel`);
  }

  /** Asks to change an order's quantity or limit price. */
  replace(id: string, changes: { qty?: string; limit_price?: string }): Promise<Order> {
    return this.#api.call("PATCH", `/api/v1/orders/${encodeURIComponent(id)}`, changes);
  }

  /** Registers this device's native push token (FCM or APNs) for background alerts. */
  registerPushDevice(platform: "fcm" | "apns", token: string): Promise<unknown> {
    return this.#api.call("POST", "/api/v1/push/devices", { platform, token });
  }

  /** Registers a browser's Web Push subscription (`PushSubscription.toJSON()`). */
  registerWebPush(subscription: { endpoint: string; keys: Record<string, string> }) {
    return this.#api.call("POST", "/api/v1/push/subscriptions", subscription);
  }
}
