/**
 * A push service's credential (APNs' provider token, FCM's access token): made when first
 * needed, shared by every concurrent send, made again once it is due for renewal or the service
 * refuses it. At most one is being made at a time.
 */

/** A credential and the moment (in the clock's ms) it is due for renewal. */
export interface Renewable {
  token: string;
  renewAt: number;
}

/** Holds one credential at a time; subclasses say how one is made. */
export abstract class TokenCache {
  #current: Renewable | null = null;
  #pending: Promise<string> | null = null;

  constructor(protected readonly now: () => number) {}

  /** Makes a new credential. */
  protected abstract make(): Promise<Renewable>;

  /** The current credential, or a new one once it is due. */
  get(): Promise<string> {
    if (this.#current && this.now() < this.#current.renewAt) {
      return Promise.resolve(this.#current.token);
    }
    return this.#pending ??= this.make()
      .then((made) => (this.#current = made).token)
      .finally(() => (this.#pending = null));
  }

  /** The service refused `stale`: forget it (unless a newer one already replaced it), get another. */
  renew(stale: string): Promise<string> {
    if (this.#current?.token === stale) this.#current = null;
    return this.get();
  }
}
