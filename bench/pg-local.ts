// Throwaway local PostgreSQL 15 clusters and walkeeper processes for the
// quorum benchmark and the demo (scripts/demo.mjs imports the built copy).
// PostgreSQL refuses to run as root, so when we are root every PostgreSQL
// program runs as the `postgres` user, in directories that user owns.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chownToPg, crashPostgres, freePort, pgTempDir, runPg, runPgOk, startPostgres, type RunPgOptions, type RunResult } from '../support/pg-proc.js';

// scripts/demo.mjs and quorum.ts take these from here.
export { freePort, PG_BIN, pgTempDir } from '../support/pg-proc.js';

/** The repository root (this file is dist/bench/pg-local.js once built). */
export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const WALKEEPER_BIN = join(REPO, 'bin', 'walkeeper.js');

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

  /** libpq connection string for this server. */
  get connString(): string {
    return `host=127.0.0.1 port=${this.port} user=postgres dbname=postgres`;
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
    chownToPg(join(dataDir, 'standby.signal'));
    const pg = new LocalPg(root, dataDir, port);
    pg.configure({ port, unix_socket_directories: root, hot_standby: 'on', synchronous_standby_names: '', ...opts.conf });
    return pg;
  }

  configure(conf: Record<string, string | number>): void {
    const path = join(this.dataDir, 'postgresql.auto.conf');
    writeFileSync(path, (existsSync(path) ? readFileSync(path, 'utf8') : '') + confText(conf));
    chownToPg(path);
  }

  async start(): Promise<void> {
    const pg = startPostgres(this.dataDir, this.port, this.logFile);
    this.child = pg.child;
    this.exited = pg.exited;
    await pg.ready;
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

  /** The host dies: kill -9 of the server and all its processes at once. */
  async kill9(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (c && this.exited) await crashPostgres(c, this.exited);
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

  /** The postmaster's pid while running (its backends and auxiliary processes are its children). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async sql(query: string, db = 'postgres'): Promise<string> {
    const out = await runPgOk('/usr/bin/psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db, '-c', query]);
    return out.trim();
  }

  /** No time limit unless `opts` sets one: a benchmark run lasts as long as it was asked to. */
  pgbench(args: string[], opts: RunPgOptions = {}): Promise<string> {
    return runPgOk('pgbench', this.pgbenchArgs(args), { timeoutMs: 0, ...opts });
  }

  /** pgbench whatever its exit status (the server may die under it): its summary is on stdout either way. */
  pgbenchResult(args: string[], opts: RunPgOptions = {}): Promise<RunResult> {
    return runPg('pgbench', this.pgbenchArgs(args), { timeoutMs: 0, ...opts });
  }

  private pgbenchArgs(args: string[]): string[] {
    return ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', ...args, 'postgres'];
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * The Node that runs walkeeper: this one, or on a Node older than 24 the
 * pinned one bin/walkeeper.js would hand itself to. Started directly, so
 * that node options reach it and no idle wrapper process sits in between.
 */
function walkeeperNode(): string {
  const pinned = join(REPO, 'node_modules', 'node', 'bin', 'node');
  return Number(process.versions.node.split('.')[0]) < 24 && existsSync(pinned) ? pinned : process.execPath;
}

/** A walkeeper child process (`run` or `propose`) with its output kept. */
export class WalkeeperProc {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  /** `opts.bin`: the walkeeper entry point to run (default this checkout's). */
  constructor(args: string[], opts: { logLevel?: string; onLine?: (line: string) => void; bin?: string } = {}) {
    // WK_BENCH_NODE_ARGS: extra node options for walkeeper processes (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
    const nodeArgs = (process.env.WK_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.child = spawn(walkeeperNode(), [...nodeArgs, opts.bin ?? WALKEEPER_BIN, ...args], {
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
export async function startSafekeeper(dataDir: string, pgPort: number, httpPort: number, extra: string[] = [], bin?: string): Promise<WalkeeperProc> {
  let ready: () => void = () => {};
  const isReady = new Promise<void>((r) => (ready = r));
  const p = new WalkeeperProc(['run', '-D', dataDir, '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`, ...extra], {
    onLine: (line) => {
      if (line.includes('"walkeeper ready"')) ready();
    },
    bin,
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

/** The options of `walkeeper propose`, `promote` and `sync-safekeepers` that name the quorum. */
export function quorumArgs(safekeeperPorts: number[], tenant: string, timeline: string): string[] {
  return ['--safekeepers', safekeeperPorts.map((p) => `127.0.0.1:${p}`).join(','), '--tenant', tenant, '--timeline', timeline];
}

/** primary_conninfo for a standby that streams from the safekeeper on `port`. */
export function safekeeperConninfo(port: number, tenant: string, timeline: string, applicationName: string): string {
  return `host=127.0.0.1 port=${port} user=postgres application_name=${applicationName} options='-c ztenantid=${tenant} -c ztimelineid=${timeline}'`;
}

/** Wait (up to 5 min) until `app` is a caught-up synchronous standby of `primary`; `what` describes it when it is not. */
export async function waitSyncStandby(primary: LocalPg, app: string, what: () => string): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const v = await primary.sql(
      `select sync_state || '/' || (flush_lsn >= pg_current_wal_flush_lsn())::text from pg_stat_replication where application_name = '${app}' and state = 'streaming'`,
    );
    if (v === 'sync/true') return;
    if (Date.now() > deadline) throw new Error(`${app} did not become a caught-up synchronous standby (${v}): ${what()}`);
    await sleep(200);
  }
}

/** Parse pgbench's summary. */
export function pgbenchSummary(out: string): { tps: number; latencyMs: number; transactions: number } {
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? NaN);
  const transactions = Number(/actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  return { tps, latencyMs, transactions };
}
