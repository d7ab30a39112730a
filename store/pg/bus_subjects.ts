/**
 * What EVENT_BUS_URL and the bus's subjects mean: the servers and credentials the NATS client is
 * given (credentials as options, never in a server address, and never in a log line), and the
 * subject of each user.
 */

/** NATS client settings from an EVENT_BUS_URL (`nats://[user:pass@|token@]host:port[,…]`). */
export interface BusServers {
  /** `host:port` of each server (no credentials). */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * The servers of an EVENT_BUS_URL, and the credentials of the first that has any (a cluster's
 * servers share them). Throws on an address that is not `nats://host[:port]`.
 */
export function busServers(url: string): BusServers {
  const out: BusServers = { servers: [] };
  for (const part of url.split(",").map((s) => s.trim())) {
    const u = new URL(part);
    if (u.protocol !== "nats:" || !u.hostname) throw new Error("not a nats://HOST:PORT address");
    out.servers.push(`${u.hostname}:${u.port || "4222"}`);
    if (out.user !== undefined || out.token !== undefined || !u.username) continue;
    if (u.password) {
      out.user = decodeURIComponent(u.username);
      out.pass = decodeURIComponent(u.password);
    } else out.token = decodeURIComponent(u.username);
  }
  return out;
}

/** The servers of an EVENT_BUS_URL for a log line: `host:port` only, never credentials. */
export function busWhere(url: string): string {
  try {
    return busServers(url).servers.join(",");
  } catch {
    return "the event bus";
  }
}

/** A NATS subject token for a user id: itself when plain, else `~` + base64url (injective). */
export function subjectToken(userId: string): string {
  if (/^[A-Za-z0-9_-]{1,200}$/.test(userId)) return userId;
  const bytes = new TextEncoder().encode(userId);
  const b64 = btoa(String.fromCharCode(...bytes));
  return "~" + b64.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}
