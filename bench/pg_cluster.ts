/**
 * The bench's own Postgres cluster: made with initdb in a temporary directory (as the `postgres`
 * OS user, since initdb refuses root), trust auth, on a free port, `fsync` and `synchronous_commit`
 * on (Postgres's defaults: a 201 means the report is on disk), started under `taskset -c 0` so the
 * postmaster and every backend it forks share CPU 0 with the server under test. The shared server
 * on 5432 is never touched. `stop()` removes it all again.
 */
import { affinity, freePort, treeCpuMicros } from "./procs.ts";

/** A running bench cluster. */
export interface BenchCluster {
  url: string;
  port: number;
  /** The postmaster's pid (its backends are its children). */
  postmasterPid(): number;
  /** CPU µs so far of every process of this cluster (postmaster and children). */
  cpuMicros(): number;
  stop(): Promise<void>;
}

/** Where this box's Postgres binaries are (the newest major version). */
export function pgBin(): string {
  const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
    .filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error("no Postgres under /usr/lib/postgresql/*/bin");
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

async function run(cmd: string, args: string[], pin?: number): Promise<string> {
  const argv = pin === undefined ? [cmd, ...args] : ["taskset", "-c", String(pin), cmd, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed:\n${text}`);
  return text;
}

/** Runs `bin` as the postgres OS user (we are root here; initdb and postgres refuse root). */
function asPostgres(bin: string, args: string[], pin?: number): Promise<string> {
  const asRoot = Deno.uid() === 0;
  return asRoot ? run("runuser", ["-u", "postgres", "--", bin, ...args], pin) : run(bin, args, pin);
}

/** Makes and starts the cluster; on any failure removes what it made. */
export async function startCluster(preferredPort = 5499): Promise<BenchCluster> {
  const bin = pgBin();
  const dir = await Deno.makeTempDir({ prefix: "blotter-bench-pg-" });
  const data = `${dir}/data`;
  const port = freePort(preferredPort);
  if (Deno.uid() === 0) await run("chown", ["postgres:postgres", dir]);
  const stop = async () => {
    try {
      await asPostgres(`${bin}/pg_ctl`, ["-D", data, "-m", "fast", "-w", "stop"]);
    } catch (err) {
      // Not started, or already gone: either way nothing of it may be left behind.
      if (!String(err).includes("No such file") && !String(err).includes("is not running")) {
        console.warn(String(err));
      }
    }
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await asPostgres(`${bin}/initdb`, ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
    const options = [
      `-p ${port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${dir}`,
      "-c fsync=on",
      "-c synchronous_commit=on",
      "-c max_connections=200",
    ].join(" ");
    await asPostgres(`${bin}/pg_ctl`, [
      "-D",
      data,
      "-l",
      `${dir}/log`,
      "-o",
      options,
      "-w",
      "start",
    ], 0);
  } catch (err) {
    await stop();
    throw err;
  }
  const postmasterPid = () =>
    Number(Deno.readTextFileSync(`${data}/postmaster.pid`).split("\n")[0]);
  const pinned = affinity(postmasterPid());
  if (pinned !== "0") console.warn(`bench Postgres is on CPUs ${pinned}, not 0`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    postmasterPid,
    cpuMicros: () => treeCpuMicros(postmasterPid()),
    stop,
  };
}

/** One query through psql (unaligned, tuples only): its output, trimmed. */
export async function psql(cluster: BenchCluster, sql: string): Promise<string> {
  const args = ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres", "-At", "-c", sql];
  return (await run(`${pgBin()}/psql`, args)).trim();
}

/** The settings that make a commit durable, as the running cluster reports them. */
export function durability(cluster: BenchCluster): Promise<string> {
  return psql(
    cluster,
    "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings " +
      "where name in ('fsync','synchronous_commit','wal_sync_method','full_page_writes','autovacuum')",
  );
}

/**
 * One 8 kB WAL write + fdatasync, as `pg_test_fsync` measures it (its first section), in a file
 * next to the cluster's. Stops the tool as soon as that line is printed.
 */
export async function fdatasyncFigure(seconds = 2): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "blotter-bench-fsync-" });
  const child = new Deno.Command(`${pgBin()}/pg_test_fsync`, {
    args: ["-s", String(seconds), "-f", `${dir}/probe`],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let text = "";
  let line: string | undefined;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      line = text.split("\n").find((l) => /^\s*fdatasync\s+\S+\s+ops\/sec/.test(l));
      if (line) break;
    }
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* already ended */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
  return line ? line.trim().replace(/\s+/g, " ") : "fdatasync: not measured";
}
