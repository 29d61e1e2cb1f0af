// Throwaway local PostgreSQL 15 clusters and walkeeper processes for the
// quorum benchmark and the demo (scripts/demo.mjs imports the built copy).
// PostgreSQL refuses to run as root, so when we are root every PostgreSQL
// program runs as the `postgres` user, in directories that user owns.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PG_BIN = process.env.WK_PG_BIN ?? '/usr/lib/postgresql/15/bin';
/** The repository root (this file is dist/bench/pg-local.js once built). */
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const WALKEEPER_BIN = join(REPO, 'bin', 'walkeeper.js');

let ids: { uid: number; gid: number } | null | undefined;

/** uid/gid of the `postgres` user when we are root, else null (run as ourselves). */
export function pgIds(): { uid: number; gid: number } | null {
  if (ids !== undefined) return ids;
  if (process.getuid?.() !== 0) return (ids = null);
  try {
    ids = {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
  } catch {
    throw new Error('running as root, but there is no "postgres" user to run PostgreSQL as');
  }
  return ids;
}

/** A temp directory the PostgreSQL user owns. */
export function pgTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const i = pgIds();
  if (i) chownSync(dir, i.uid, i.gid);
  chmodSync(dir, 0o755);
  return dir;
}

function chownTree(path: string): void {
  const i = pgIds();
  if (i) execFileSync('chown', ['-R', `${i.uid}:${i.gid}`, path]);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a PostgreSQL program as the PostgreSQL user. */
export function runPg(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; onStdout?: (s: string) => void; onStderr?: (s: string) => void } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const i = pgIds();
    const child = spawn(cmd.includes('/') ? cmd : join(PG_BIN, cmd), args, {
      cwd: opts.cwd ?? tmpdir(),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(i ? { uid: i.uid, gid: i.gid } : {}),
      env: { ...process.env, PGTZ: 'UTC', LC_ALL: 'C', HOME: tmpdir() },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(d.toString());
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(d.toString());
    });
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function runPgOk(cmd: string, args: string[], opts: Parameters<typeof runPg>[2] = {}): Promise<string> {
  const r = await runPg(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function confText(conf: Record<string, string | number>): string {
  return Object.entries(conf)
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replace(/'/g, "''")}'`}\n`)
    .join('');
}

/** A PostgreSQL server in its own temp directory, on 127.0.0.1. */
export class LocalPg {
  private child: ChildProcess | null = null;
  private exited: Promise<void> | null = null;

  private constructor(
    readonly root: string,
    readonly dataDir: string,
    readonly port: number,
  ) {}

  get logFile(): string {
    return join(this.root, 'postgres.log');
  }

  /** initdb a new cluster (trust auth) with `conf` appended; not started. */
  static async init(opts: { prefix?: string; conf?: Record<string, string | number>; walSegSizeMb?: number } = {}): Promise<LocalPg> {
    const root = pgTempDir(opts.prefix ?? 'wk-pg-');
    const dataDir = join(root, 'data');
    const port = await freePort();
    const args = ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'];
    if (opts.walSegSizeMb) args.push(`--wal-segsize=${opts.walSegSizeMb}`);
    await runPgOk('initdb', args);
    const pg = new LocalPg(root, dataDir, port);
    pg.configure({ listen_addresses: '127.0.0.1', port, unix_socket_directories: root, wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10, ...opts.conf });
    return pg;
  }

  /** A standby from a base backup of `primary` (streaming from it, or from wherever primary_conninfo in `conf` says). */
  static async standbyOf(primary: LocalPg, opts: { prefix?: string; walMethod?: 'stream' | 'none'; conf: Record<string, string | number> }): Promise<LocalPg> {
    const root = pgTempDir(opts.prefix ?? 'wk-standby-');
    const dataDir = join(root, 'data');
    const port = await freePort();
    await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-X', opts.walMethod ?? 'stream', '-c', 'fast', '--no-sync']);
    writeFileSync(join(dataDir, 'standby.signal'), '');
    chownTree(join(dataDir, 'standby.signal'));
    const pg = new LocalPg(root, dataDir, port);
    pg.configure({ port, unix_socket_directories: root, hot_standby: 'on', synchronous_standby_names: '', ...opts.conf });
    return pg;
  }

  configure(conf: Record<string, string | number>): void {
    const path = join(this.dataDir, 'postgresql.auto.conf');
    writeFileSync(path, (existsSync(path) ? readFileSync(path, 'utf8') : '') + confText(conf));
    chownTree(path);
  }

  async start(): Promise<void> {
    const i = pgIds();
    const child = spawn(join(PG_BIN, 'postgres'), ['-D', this.dataDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(i ? { uid: i.uid, gid: i.gid } : {}),
      env: { ...process.env, PGTZ: 'UTC', LC_ALL: 'C' },
    });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => {
      try {
        writeFileSync(this.logFile, d, { flag: 'a' });
      } catch {
        /* removed during teardown */
      }
    });
    this.exited = new Promise((r) => child.on('exit', () => r()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited during start-up; see ${this.logFile}`);
      if ((await runPg('pg_isready', ['-h', '127.0.0.1', '-p', String(this.port), '-t', '1'])).code === 0) return;
      if (Date.now() > deadline) throw new Error(`postgres did not become ready; see ${this.logFile}`);
      await sleep(100);
    }
  }

  /** Fast shutdown (SIGINT), SIGKILL after 30 s. */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGINT');
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }

  /** Immediate shutdown, for cleanup on exit: SIGQUIT, then SIGKILL. */
  killNow(): void {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGQUIT');
      setTimeout(() => c.kill('SIGKILL'), 2000).unref();
    }
  }

  get running(): boolean {
    return this.child !== null;
  }

  async sql(query: string, db = 'postgres'): Promise<string> {
    const out = await runPgOk('/usr/bin/psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db, '-c', query]);
    return out.trim();
  }

  pgbench(args: string[], opts: Parameters<typeof runPg>[2] = {}): Promise<string> {
    return runPgOk('pgbench', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', ...args, 'postgres'], opts);
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A walkeeper child process (`run` or `propose`) with its output kept. */
export class WalkeeperProc {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], opts: { logLevel?: string; onLine?: (line: string) => void } = {}) {
    // WK_BENCH_NODE_ARGS: extra node options for walkeeper processes (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
    const nodeArgs = (process.env.WK_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.child = spawn(process.execPath, [...nodeArgs, WALKEEPER_BIN, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WALKEEPER_LOG_FORMAT: 'json', WALKEEPER_LOG_LEVEL: opts.logLevel ?? 'info' },
    });
    let partial = '';
    const onData = (d: Buffer): void => {
      const s = d.toString();
      this.output += s;
      if (this.output.length > 1 << 20) this.output = this.output.slice(-(1 << 19));
      if (!opts.onLine) return;
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        opts.onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    if (this.alive) this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

/** Start `walkeeper run` and wait until it is ready. */
export async function startSafekeeper(dataDir: string, pgPort: number, httpPort: number, extra: string[] = []): Promise<WalkeeperProc> {
  let ready: () => void = () => {};
  const isReady = new Promise<void>((r) => (ready = r));
  const p = new WalkeeperProc(['run', '-D', dataDir, '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`, ...extra], {
    onLine: (line) => {
      if (line.includes('"walkeeper ready"')) ready();
    },
  });
  const failed = p.exited.then((code) => {
    throw new Error(`walkeeper run exited (${code}) during start-up: ${p.output.trim().slice(-2000)}`);
  });
  const timeout = sleep(30_000).then(() => {
    throw new Error('walkeeper run did not become ready in 30 s');
  });
  await Promise.race([isReady, failed, timeout]);
  failed.catch(() => {});
  timeout.catch(() => {});
  return p;
}

/** Parse pgbench's summary. */
export function pgbenchSummary(out: string): { tps: number; latencyMs: number; transactions: number } {
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? NaN);
  const transactions = Number(/actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  return { tps, latencyMs, transactions };
}
