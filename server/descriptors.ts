/**
 * Open files: how many this process may hold, how many it holds, and what that leaves for
 * client connections. Every socket is a descriptor, so the open-file limit (RLIMIT_NOFILE) is the
 * real cap on connections; past it `accept` fails with EMFILE. Deno raises the soft limit to the
 * hard one at start (as Node and Go do), so the limit read here is already the most this host
 * allows; docs/operations.md says how to raise the hard one.
 */

/** What is left when the limit cannot be read (not Linux): a cap from a common default. */
const FALLBACK_LIMIT = 1_024;

/**
 * Descriptors never given to client connections: the store's files, the Postgres pool and
 * writers, the LISTEN connection, push senders' connections, static files and the runtime's own
 * (about 30 at rest). A fixed part, plus a share that grows with the limit for pools and files
 * that grow with load.
 */
export function reservedDescriptors(limit: number): number {
  return 64 + Math.floor(limit / 16);
}

/**
 * The default cap on open streams and sockets (MAX_STREAMS) for an open-file limit: three
 * quarters of what the reserve leaves. The last quarter is for everything that is not a stream —
 * sign-ins, order actions, the venue's reports, health checks, connections between requests — so
 * a full house of streams still leaves the API and `/healthz` room to answer.
 */
export function streamCapFor(limit: number): number {
  return Math.max(1, Math.floor(streamRoomFor(limit) * 3 / 4));
}

/** What the reserve leaves for client connections: a MAX_STREAMS past it is not reached. */
export function streamRoomFor(limit: number): number {
  return limit - reservedDescriptors(limit);
}

/**
 * How many open descriptors mean the server is running short: half the reserve left. Past it the
 * server sheds connections that hold a descriptor without a request in progress (serve.ts).
 */
export function pressureMarkFor(limit: number): number {
  return limit - Math.floor(reservedDescriptors(limit) / 2);
}

/** The soft RLIMIT_NOFILE in force (Linux's /proc/self/limits), or a fallback elsewhere. */
export function openFileLimit(): number {
  try {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    const n = Number(soft);
    // "unlimited" does not happen for RLIMIT_NOFILE on Linux, but costs nothing to allow.
    return Number.isSafeInteger(n) && n > 0 ? n : soft === "unlimited" ? 1_048_576 : FALLBACK_LIMIT;
  } catch {
    return FALLBACK_LIMIT;
  }
}

/**
 * How many descriptors this process holds now, or null where that cannot be read. Linux 6.2+
 * reports the count as the size of /proc/self/fd (0.1 ms at 10,000 open); older kernels report 0,
 * and then the directory is counted (20 ms at 10,000, so callers sample it, never per request).
 */
export function openDescriptors(): number | null {
  try {
    const size = Deno.statSync("/proc/self/fd").size;
    if (size > 0) return size;
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return null;
  }
}
