// Real PostgreSQL 15 clusters for tests: created in a temp dir, run as the
// `postgres` system user (the server refuses root), on a free loopback port,
// and stopped by PID when the test ends, also when it fails.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export function pgBin(name: string): string {
  return join(PG_BIN, name);
}

interface Ids {
  uid: number;
  gid: number;
}

let pgIds: Ids | null | undefined;

/** uid/gid to run PostgreSQL tools as: the `postgres` user when we are root, else ourselves. */
export function pgUser(): Ids | null {
  if (pgIds !== undefined) return pgIds;
  if (process.getuid?.() !== 0) return (pgIds = null);
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return (pgIds = { uid, gid });
}

/** A temp directory the PostgreSQL user owns. */
export function pgTempDir(prefix = 'wk-pg-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const ids = pgUser();
  if (ids) chownSync(dir, ids.uid, ids.gid);
  chmodSync(dir, 0o755);
  return dir;
}

/** Give a file or directory tree to the PostgreSQL user (for files the test wrote as root). */
export function chownToPg(path: string): void {
  const ids = pgUser();
  if (ids) execFileSync('chown', ['-R', `${ids.uid}:${ids.gid}`, path]);
}

export function pgSpawnOptions(extra: SpawnOptions = {}): SpawnOptions {
  const ids = pgUser();
  return {
    ...extra,
    ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
    env: { ...process.env, PGTZ: 'UTC', LC_ALL: 'C', HOME: tmpdir(), ...(extra.env ?? {}) },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a PostgreSQL tool as the PostgreSQL user and collect its output. */
export function runPg(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.includes('/') ? cmd : pgBin(cmd), args, pgSpawnOptions({ ...opts, stdio: ['pipe', 'pipe', 'pipe'] }));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

export async function runPgOk(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await runPg(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface ClusterOptions {
  /** initdb --wal-segsize, in MB. */
  walSegSizeMb?: number;
  /** Extra postgresql.conf settings. */
  conf?: Record<string, string | number>;
  /** Use an existing data directory (e.g. a pg_basebackup) instead of initdb. */
  dataDir?: string;
  /** Keep the temp dir after stop (debugging). */
  keep?: boolean;
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
    const child = spawn(pgBin('postgres'), ['-D', this.dataDir], pgSpawnOptions({ stdio: ['ignore', 'ignore', 'pipe'] }));
    this.child = child;
    this.pid = child.pid ?? 0;
    const log: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => {
      log.push(d);
      try {
        writeFileSync(this.logFile, d, { flag: 'a' });
      } catch {
        /* the temp dir may be gone during teardown */
      }
    });
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`postgres exited during start-up: ${Buffer.concat(log).toString().trim()}`);
      }
      const r = await runPg('pg_isready', ['-h', '127.0.0.1', '-p', String(this.port), '-t', '1']);
      if (r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`postgres did not become ready: ${Buffer.concat(log).toString().trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
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
  await cluster.start();
  return cluster;
}
