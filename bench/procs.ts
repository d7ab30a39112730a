/**
 * What the bench reads about processes from /proc: CPU time (summed over a process tree or a set
 * of processes), resident memory, CPU affinity; a garbage collection asked of a server through
 * its V8 inspector, so that "RSS per idle stream" is not a heap that has not been collected yet;
 * and starting a server pinned to CPU 0.
 */

/** The repository's root (where the bench's servers run). */
const ROOT = new URL("..", import.meta.url).pathname;

/** Clock ticks per second of /proc/PID/stat's utime/stime (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

/** A process's user+system CPU so far in µs, or 0 when it is gone. */
function cpuMicros(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) / USER_HZ) * 1e6;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0; // ended meanwhile: its time is lost
    throw err;
  }
}

/** Every process id on the box with its parent id. */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      map.set(Number(e.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* ended while listing: not part of any tree any more */ }
  }
  return map;
}

/** `root` and all its descendants. */
export function processTree(root: number): number[] {
  const ppid = parents();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, parent] of ppid) if (parent === tree[i]) tree.push(pid);
  }
  return tree;
}

/** CPU µs used so far by a process tree (re-listed each time: Postgres forks backends). */
export function treeCpuMicros(root: number | "self"): number {
  if (root === "self") return cpuMicros("self");
  return processTree(root).reduce((sum, pid) => sum + cpuMicros(pid), 0);
}

/** Resident memory of a process, in KB. */
export function rssKb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

/** The CPUs a process (all its threads, as far as /proc/PID/status tells) may run on, e.g. "0". */
export function affinity(pid: number | "self"): string {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return /Cpus_allowed_list:\s+(\S+)/.exec(status)![1];
}

/** Pins every thread of this process (and what it spawns later, unless told otherwise) to `cpu`. */
export async function pinSelf(cpu: number): Promise<void> {
  const out = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", String(cpu), String(Deno.pid)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`taskset failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** A free TCP port on 127.0.0.1, preferring `preferred` (which may be taken). */
export function freePort(preferred = 0): number {
  for (const port of preferred ? [preferred, 0] : [0]) {
    try {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      const chosen = (l.addr as Deno.NetAddr).port;
      l.close();
      return chosen;
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error("no free port");
}

/**
 * Asks the V8 behind an `--inspect=127.0.0.1:PORT` server (Deno or Node alike) for a full garbage
 * collection, then disconnects. Answers false when the inspector cannot be reached.
 */
export async function collectGarbage(inspectPort: number): Promise<boolean> {
  try {
    const list = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
    const ws = new WebSocket(list[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const done = new Promise((resolve) => ws.onmessage = resolve);
    ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
    await done;
    ws.close();
    await new Promise((r) => setTimeout(r, 500)); // let the freed pages go back
    return true;
  } catch (err) {
    console.warn(`no GC through the inspector on ${inspectPort}: ${err}`);
    return false;
  }
}

/** Busy and total time so far of each CPU, in µs, from /proc/stat (busy: not idle nor iowait). */
export function cpuTimes(): Array<{ busy: number; total: number }> {
  const lines = Deno.readTextFileSync("/proc/stat").split("\n").filter((l) => /^cpu\d+ /.test(l));
  return lines.map((l) => {
    const f = l.split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: ((total - f[3] - f[4]) / USER_HZ) * 1e6, total: (total / USER_HZ) * 1e6 };
  });
}

/**
 * Spawns `argv` under `taskset -c 0` (in `cwd`, the repository by default) and waits until `ready`
 * answers true (or it exits); answers its pid and how to stop it.
 */
export async function spawnPinned(
  argv: string[],
  env: Record<string, string>,
  ready: () => Promise<boolean>,
  cwd = ROOT,
) {
  const child = new Deno.Command("taskset", {
    args: ["-c", "0", ...argv],
    cwd,
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await child.status;
  };
  for (let i = 0; !(await ready().catch(() => false)); i++) {
    if (exited || i > 300) {
      await stop();
      throw new Error(`${argv.join(" ")} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pinned = affinity(child.pid);
  if (pinned !== "0") console.warn(`server ${child.pid} is on CPUs ${pinned}, not 0`);
  return { pid: child.pid, stop };
}

/** Adds a clean-up to `withCleanups`' stack. */
export type Defer = (fn: () => Promise<void> | void) => void;

/**
 * Runs `body` with a stack of clean-ups (`defer` one: a server, a cluster, a directory), emptied
 * last first when `body` ends or throws, on Ctrl-C and SIGTERM, and when an exception escapes in a
 * stream or socket callback, which would end the process without running any `finally` and leave
 * servers and clusters behind. `cleanUp` empties it early (between targets).
 */
export async function withCleanups(
  body: (defer: Defer, cleanUp: () => Promise<void>) => Promise<void>,
): Promise<void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanUp = async () => {
    while (cleanups.length) {
      try {
        await cleanups.pop()!();
      } catch (err) {
        console.error(`cleanup: ${err}`);
      }
    }
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error("interrupted: stopping servers and removing the bench cluster");
    cleanUp().finally(() => Deno.exit(130));
  };
  const onCrash = (e: ErrorEvent | PromiseRejectionEvent) => {
    e.preventDefault();
    console.error("bench failed:", "error" in e ? e.error : e.reason);
    if (interrupted) return;
    interrupted = true;
    cleanUp().finally(() => Deno.exit(1));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  globalThis.addEventListener("error", onCrash);
  globalThis.addEventListener("unhandledrejection", onCrash);
  try {
    await body((fn) => cleanups.push(fn), cleanUp);
  } finally {
    await cleanUp();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    globalThis.removeEventListener("error", onCrash);
    globalThis.removeEventListener("unhandledrejection", onCrash);
  }
}
