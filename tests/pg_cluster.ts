/**
 * A test's own Postgres cluster, made from this machine's binaries (/usr/lib/postgresql/VERSION/bin) in
 * a directory of its own, on a free port, trust auth — for tests that must stop, start or starve
 * a database without touching the shared one on 5432. Made but not started: the test decides.
 * initdb and postgres refuse root, so as root they run as the `postgres` OS user.
 */
import { freePort } from "./helpers.ts";

/** A cluster a test made; `remove()` stops it and deletes every file of it. */
export interface TestCluster {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres`. */
  readonly url: string;
  /** The data directory. */
  readonly data: string;
  start(): Promise<void>;
  /** Stops it (`fast` by default; `immediate` is a crash). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Runs one SQL statement with psql; answers its output (tuples only). */
  psql(sql: string): Promise<string>;
  /** The server's own log so far. */
  log(): string;
  remove(): Promise<void>;
}

/** The newest Postgres binaries on this machine, or null when there are none. */
export function pgBin(): string | null {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
    return versions.length ? `/usr/lib/postgresql/${versions[0]}/bin` : null;
  } catch {
    return null;
  }
}

async function run(bin: string, args: string[]): Promise<string> {
  const argv = Deno.uid() === 0
    ? ["runuser", "-u", "postgres", "--", bin, ...args]
    : [bin, ...args];
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

/**
 * Makes a cluster (initdb) under `parent` (a fresh temporary directory by default; a test may
 * pass a small tmpfs), with extra `postgres -c` settings.
 */
export async function makeCluster(
  options: { parent?: string; settings?: string[] } = {},
): Promise<TestCluster> {
  const bin = binaries();
  const dir = await clusterDir(options.parent);
  try {
    await run(`${bin}/initdb`, ["-D", `${dir}/data`, "-A", "trust", "-U", "postgres", "--no-sync"]);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return cluster(bin, dir, options.settings ?? []);
}

/**
 * Makes a streaming standby of a running `primary` (`pg_basebackup -R`: it follows the primary
 * from the moment it starts), in a directory of its own on a free port. Not started.
 */
export async function makeStandby(
  primary: TestCluster,
  options: { settings?: string[] } = {},
): Promise<TestCluster & { promote(): Promise<void> }> {
  const bin = binaries();
  const dir = await clusterDir();
  try {
    await run(`${bin}/pg_basebackup`, [
      ...["-D", `${dir}/data`, "-R", "--checkpoint=fast", "--no-sync"],
      ...["-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres"],
    ]);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  const standby = cluster(bin, dir, options.settings ?? []);
  return {
    ...standby,
    async promote() {
      await run(`${bin}/pg_ctl`, ["-D", standby.data, "-w", "promote"]);
    },
  };
}

function binaries(): string {
  const bin = pgBin();
  if (!bin) throw new Error("no Postgres binaries under /usr/lib/postgresql/*/bin");
  return bin;
}

async function clusterDir(parent?: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "blotter-test-pg-", dir: parent });
  if (Deno.uid() === 0) {
    await new Deno.Command("chown", { args: ["postgres:postgres", dir] }).output();
  }
  return dir;
}

/** The handle on a cluster whose data directory is `DIR/data`. */
function cluster(bin: string, dir: string, extra: string[]): TestCluster {
  const data = `${dir}/data`;
  const port = freePort();
  const logFile = `${dir}/server.log`;
  const settings = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    ...extra.map((s) => `-c ${s}`),
  ].join(" ");
  const stop = async (mode: "fast" | "immediate" = "fast") => {
    await run(`${bin}/pg_ctl`, ["-D", data, "-m", mode, "-w", "stop"]);
  };
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    data,
    async start() {
      await run(`${bin}/pg_ctl`, ["-D", data, "-l", logFile, "-o", settings, "-w", "start"]);
    },
    stop,
    psql: (sql) =>
      run(`${bin}/psql`, ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-Atc", sql]),
    log: () => {
      try {
        return Deno.readTextFileSync(logFile);
      } catch {
        return "";
      }
    },
    async remove() {
      await stop("immediate").catch(() => {/* not running */});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
