// Real PostgreSQL 15 clusters for tests: created in a temp dir, run as the
// `postgres` system user (the server refuses root), on a free loopback port,
// and stopped by PID when the test ends, also when it fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { chownToPg, crashPostgres, freePort, pgBin, pgSpawnOptions, pgTempDir, runPgOk, startPostgres, type RunResult } from '../../support/pg-proc.js';

// The process helpers are shared with the benchmarks; re-exported so a test needs one import for PostgreSQL.
export { chownToPg, freePort, pgBin, pgSpawnOptions, pgTempDir, runPg, runPgOk, type RunResult } from '../../support/pg-proc.js';

export interface ClusterOptions {
  /** initdb --wal-segsize, in MB. */
  walSegSizeMb?: number;
  /** Extra postgresql.conf settings. */
  conf?: Record<string, string | number>;
  /** Use an existing data directory (e.g. a pg_basebackup) instead of initdb. */
  dataDir?: string;
  /** Keep the temp dir after stop (debugging). */
  keep?: boolean;
  /** Lines that replace pg_hba.conf (e.g. hostssl only). */
  hba?: string[];
}

/** Something with a teardown hook: a tap Test. */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export class PgCluster {
  readonly root: string;
  readonly dataDir: string;
  readonly port: number;
  pid = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(root: string, dataDir: string, port: number) {
    this.root = root;
    this.dataDir = dataDir;
    this.port = port;
  }

  get walDir(): string {
    return join(this.dataDir, 'pg_wal');
  }

  get logFile(): string {
    return join(this.root, 'postgres.log');
  }

  /** libpq connection string for this server. */
  connString(extra = ''): string {
    return `host=127.0.0.1 port=${this.port} user=postgres dbname=postgres ${extra}`.trim();
  }

  async start(): Promise<void> {
    const pg = startPostgres(this.dataDir, this.port, this.logFile);
    this.child = pg.child;
    this.pid = pg.child.pid ?? 0;
    this.exited = pg.exited;
    await pg.ready;
  }

  /** Fast shutdown by PID (SIGINT), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** A crash, as when the host dies: kill -9 of the server and all its processes (see crashPostgres). */
  async kill9(): Promise<void> {
    if (this.child && this.exited) await crashPostgres(this.child, this.exited);
  }

  /** Run SQL through psql; returns unaligned, tuples-only output. */
  async sql(query: string, db = 'postgres'): Promise<string> {
    const out = await runPgOk('/usr/bin/psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', db, '-c', query]);
    return out.trim();
  }

  async pgbench(args: string[]): Promise<string> {
    return runPgOk('pgbench', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', ...args, 'postgres'], { timeoutMs: 600_000 });
  }

  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A PostgreSQL tool running in the background (pg_receivewal, …). */
export interface Background {
  child: ChildProcess;
  done: Promise<RunResult>;
  stderr(): string;
}

/** Start a PostgreSQL tool as the PostgreSQL user without waiting for it; killed at teardown. */
export function spawnPg(t: Teardownable, cmd: string, args: string[]): Background {
  const child = spawn(pgBin(cmd), args, pgSpawnOptions({ stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, done, stderr: () => err };
}

function confText(conf: Record<string, string | number>): string {
  return Object.entries(conf)
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replace(/'/g, "''")}'`}\n`)
    .join('');
}

/**
 * initdb + start a cluster on a free port; stopped and deleted at teardown.
 * Settings favour tests: replication allowed, WAL kept, no fsync.
 */
export async function startCluster(t: Teardownable, opts: ClusterOptions = {}): Promise<PgCluster> {
  const root = pgTempDir();
  const dataDir = opts.dataDir ?? join(root, 'data');
  const port = await freePort();
  const cluster = new PgCluster(root, dataDir, port);
  t.teardown(() => (opts.keep ? cluster.stop() : cluster.remove()));
  if (!opts.dataDir) {
    const args = ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'];
    if (opts.walSegSizeMb) args.push(`--wal-segsize=${opts.walSegSizeMb}`);
    await runPgOk('initdb', args);
  }
  const conf = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: root,
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    fsync: 'off',
    full_page_writes: 'on',
    max_wal_size: '1GB',
    logging_collector: 'off',
    log_min_messages: 'warning',
    ...opts.conf,
  };
  const confPath = join(dataDir, 'postgresql.auto.conf');
  writeFileSync(confPath, (existsSync(confPath) ? readFileSync(confPath, 'utf8') : '') + confText(conf));
  chownToPg(confPath);
  if (opts.hba) {
    const hbaPath = join(dataDir, 'pg_hba.conf');
    writeFileSync(hbaPath, opts.hba.join('\n') + '\n');
    chownToPg(hbaPath);
  }
  await cluster.start();
  return cluster;
}
