// End-to-end harness for the quorum proposer: a real PostgreSQL 15 primary
// whose synchronous standby is `walkeeper propose`, three safekeeper daemons
// (child processes, restartable on the same ports and data directories),
// a hot standby streaming from one safekeeper, and client workloads that
// remember every commit the server acknowledged.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Test } from 'tap';
import { formatLsn, parseLsn, segmentNumber, segmentOffset, type Lsn } from '../../src/lsn.js';
import { PgClient } from '../../src/proposer/pg-client.js';
import type { TlsClientSettings } from '../../src/proposer/tls-client.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { status, type TimelineStatus } from '../archive/daemon-helpers.js';
import { BIN, ROOT, startDaemon, TENANT, TIMELINE, tempDir, type DaemonProc } from '../daemon/helpers.js';
import { sleep, waitFor } from '../helpers/support.js';
import { chownToPg, freePort, pgTempDir, runPgOk, startCluster, type ClusterOptions, type PgCluster } from '../helpers/pg.js';

export { TENANT, TIMELINE };
export const APP = 'walkeeper';

// ---------------------------------------------------------------- safekeepers

export class Safekeeper {
  proc: DaemonProc | null = null;
  readonly dataDir: string;
  /** More `walkeeper run` arguments (e.g. --tls-cert ... --tls-required). */
  args: string[] = [];
  /** TLS for the test's own connections to it (flushLsn). */
  clientTls: TlsClientSettings | undefined;

  constructor(
    private readonly t: Test,
    readonly index: number,
    readonly pgPort: number,
    readonly httpPort: number,
    root: string,
  ) {
    this.dataDir = join(root, `sk${index}`);
  }

  get address(): string {
    return `127.0.0.1:${this.pgPort}`;
  }

  get up(): boolean {
    return this.proc !== null;
  }

  async start(): Promise<void> {
    if (this.proc) return;
    mkdirSync(this.dataDir, { recursive: true });
    const proc = await startDaemon(this.t, { dataDir: this.dataDir, pgPort: this.pgPort, httpPort: this.httpPort, args: this.args });
    this.proc = proc;
    // WK_PROPOSER_LOG=FILE also keeps each safekeeper run's log lines, next to it.
    const keep = process.env.WK_PROPOSER_LOG;
    if (keep) {
      const file = `${keep}.sk${this.index}`;
      this.t.teardown(() => writeFileSync(file, proc.logs.map((l) => JSON.stringify(l)).join('\n') + '\n' + proc.stderr(), { flag: 'a' }));
    }
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await p?.kill9();
  }

  /** End of the WAL stored here (IDENTIFY_SYSTEM as a recovering proposer sees it). */
  async flushLsn(): Promise<Lsn> {
    const c = await PgClient.connect({
      host: '127.0.0.1',
      port: this.pgPort,
      user: 'walproposer',
      database: 'replication',
      replication: true,
      applicationName: 'wal_proposer_recovery',
      params: { ztenantid: TENANT, ztimelineid: TIMELINE },
      connectTimeoutMs: 3000,
      tls: this.clientTls,
    });
    try {
      const r = await c.query('IDENTIFY_SYSTEM');
      return parseLsn(r.rows[0][2] ?? '0/0');
    } finally {
      c.close();
    }
  }

  /** The timeline as the admin API shows it. */
  async status(): Promise<TimelineStatus> {
    if (!this.proc) throw new Error(`${this.address} is down`);
    return status(this.proc);
  }

  /** `length` bytes of stored WAL from `start` (.partial preferred; zeros where no file). */
  wal(start: Lsn, length: number, segSize: number, ancestry = FIRST_TIMELINE): Buffer {
    return readWal(join(this.dataDir, TENANT, TIMELINE), start, length, segSize, ancestry);
  }
}

const FIRST_TIMELINE = new TimelineAncestry(1);

/**
 * WAL bytes [start, start+length) out of a directory of segment files, each
 * segment from the file of the PostgreSQL timeline that holds it in
 * `ancestry` (timeline 1 by default); .partial preferred, zeros where no file.
 */
export function readWal(dir: string, start: Lsn, length: number, segSize: number, ancestry = FIRST_TIMELINE): Buffer {
  const out = Buffer.alloc(length);
  let pos = 0;
  while (pos < length) {
    const lsn = start + BigInt(pos);
    const segno = segmentNumber(lsn, segSize);
    const name = ancestry.fileName(segno, segSize);
    const off = segmentOffset(lsn, segSize);
    const n = Math.min(segSize - off, length - pos);
    const path = existsSync(join(dir, name + '.partial')) ? join(dir, name + '.partial') : join(dir, name);
    if (existsSync(path)) readFileSync(path).copy(out, pos, off, off + n);
    pos += n;
  }
  return out;
}

// ---------------------------------------------------------------- the proposer

export class ProposerProc {
  proc: ChildProcess | null = null;
  readonly logs: Array<Record<string, unknown>> = [];
  stderr = '';
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(
    private readonly t: Test,
    private readonly args: string[],
  ) {}

  start(): void {
    const proc = spawn(process.execPath, [BIN, 'propose', ...this.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WALKEEPER_LOG_FORMAT: 'json', WALKEEPER_LOG_LEVEL: process.env.WK_PROPOSER_LOG ? 'debug' : 'info' },
    });
    this.proc = proc;
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.t.teardown(() => this.kill9());
    // WK_PROPOSER_LOG=FILE keeps the proposer's log lines for a failing run.
    const keep = process.env.WK_PROPOSER_LOG;
    if (keep) this.t.teardown(() => writeFileSync(keep, this.logs.map((l) => JSON.stringify(l)).join('\n') + '\n' + this.stderr));
  }

  /** Log lines with this message, from the given index on. */
  lines(msg: string, from = 0): Array<Record<string, unknown>> {
    return this.logs.slice(from).filter((l) => l.msg === msg);
  }

  async waitLog(msg: string, from = 0, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return waitFor(`proposer log "${msg}"`, () => this.lines(msg, from)[0], (l) => l !== undefined, timeoutMs, 50);
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await this.exit;
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    const p = this.proc;
    this.proc = null;
    if (!p) return null;
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    return this.exit;
  }
}

// ---------------------------------------------------------------- the whole setup

export interface QuorumSetup<S extends Safekeeper = Safekeeper> {
  primary: PgCluster;
  safekeepers: S[];
  proposer: ProposerProc;
  segSize: number;
  root: string;
}

export interface QuorumOptions<S extends Safekeeper> {
  proposerArgs?: string[];
  cluster?: ClusterOptions;
  count?: number;
  /** A Safekeeper subclass for safekeeper `index` (default: a plain Safekeeper). */
  makeSafekeeper?: (index: number, pgPort: number, httpPort: number, root: string) => S;
  /** More `walkeeper run` arguments for every safekeeper. */
  safekeeperArgs?: string[];
  /** TLS for the test's own connections to the safekeepers. */
  safekeeperClientTls?: TlsClientSettings;
  /** Appended to the proposer's --primary connection string (e.g. sslmode=verify-full sslrootcert=...). */
  primaryConnInfo?: string;
}

export async function startQuorum<S extends Safekeeper = Safekeeper>(t: Test, opts: QuorumOptions<S> = {}): Promise<QuorumSetup<S>> {
  const segSize = 1 << 20;
  const primary = await startCluster(t, {
    walSegSizeMb: 1,
    ...opts.cluster,
    conf: { wal_keep_size: '2GB', max_wal_size: '2GB', checkpoint_timeout: '1h', ...opts.cluster?.conf },
  });
  const root = tempDir(t, 'wk-quorum-');
  const make = opts.makeSafekeeper ?? ((i, pgPort, httpPort, dir) => new Safekeeper(t, i, pgPort, httpPort, dir) as S);
  const safekeepers: S[] = [];
  for (let i = 0; i < (opts.count ?? 3); i++) {
    const sk = make(i, await freePort(), await freePort(), root);
    sk.args.push(...(opts.safekeeperArgs ?? []));
    sk.clientTls = opts.safekeeperClientTls;
    safekeepers.push(sk);
  }
  await Promise.all(safekeepers.map((s) => s.start()));
  const proposer = proposerFor(t, primary, safekeepers, opts.proposerArgs, opts.primaryConnInfo);
  return { primary, safekeepers, proposer, segSize, root };
}

/** `walkeeper propose` in front of `primary` (not started yet). */
export function proposerFor(t: Test, primary: PgCluster, safekeepers: Safekeeper[], extra: string[] = [], primaryConnInfo = ''): ProposerProc {
  return new ProposerProc(t, ['--primary', `host=127.0.0.1 port=${primary.port} user=postgres ${primaryConnInfo}`.trim(), ...quorumArgs(safekeepers), ...extra]);
}

/** startQuorum with the proposer started, committing, and the primary's synchronous standby. */
export async function startSynchronousQuorum(t: Test): Promise<QuorumSetup> {
  const q = await startQuorum(t);
  q.proposer.start();
  await q.proposer.waitLog('a quorum holds WAL of this term: commits flow');
  await makeSynchronous(q.primary);
  return q;
}

/** Make the proposer the primary's synchronous standby and wait until it is streaming as such. */
export async function makeSynchronous(primary: PgCluster): Promise<void> {
  await primary.sql(`alter system set synchronous_standby_names = '${APP}'`);
  await primary.sql('select pg_reload_conf()');
  await waitFor(
    'the proposer to be the synchronous standby',
    () => primary.sql(`select state || '/' || sync_state from pg_stat_replication where application_name = '${APP}'`),
    (v) => v === 'streaming/sync',
    30_000,
  );
}

/** The flush position the proposer reported to the primary: its commit position. */
export async function reportedFlush(primary: PgCluster): Promise<Lsn> {
  const v = await primary.sql(`select coalesce(flush_lsn, '0/0') from pg_stat_replication where application_name = '${APP}'`);
  return v === '' ? 0n : parseLsn(v);
}

/** primary_conninfo for a standby that streams from safekeeper `sk`. */
export function safekeeperConninfo(sk: Safekeeper, name = 'wk_standby'): string {
  return `host=127.0.0.1 port=${sk.pgPort} user=postgres application_name=${name} options='-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}'`;
}

/**
 * A hot standby from a base backup of the primary (no WAL), streaming from a
 * safekeeper; `conf` adds or overrides settings.
 */
export async function startStandby(t: Test, primary: PgCluster, sk: Safekeeper, conf: Record<string, string | number> = {}): Promise<PgCluster> {
  const root = pgTempDir('wk-qstandby-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dataDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  return startStandbyIn(t, dataDir, sk, conf);
}

/** Start the data directory `dataDir` as a hot standby streaming from safekeeper `sk`. */
export async function startStandbyIn(t: Test, dataDir: string, sk: Safekeeper, conf: Record<string, string | number> = {}): Promise<PgCluster> {
  writeFileSync(join(dataDir, 'standby.signal'), '');
  chownToPg(join(dataDir, 'standby.signal'));
  return startCluster(t, {
    dataDir,
    conf: {
      primary_conninfo: safekeeperConninfo(sk),
      hot_standby: 'on',
      hot_standby_feedback: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
      synchronous_standby_names: '',
      ...conf,
    },
  });
}

// ---------------------------------------------------------------- a workload that remembers its commits

/**
 * `clients` connections inserting rows with unique ids, one transaction
 * each, as fast as the server acknowledges them. `acked` maps every id whose
 * COMMIT returned to the content the client wrote with it. A client whose
 * connection fails reconnects to the current target (`retarget` after a
 * failover); ids are never reused, so an insert with an unknown outcome is
 * never repeated under the same id.
 */
export class Workload {
  readonly acked = new Map<number, string>();
  readonly errors: string[] = [];
  private nextId = 1;
  private running = true;
  private port: number;
  /** Bumped by `retarget`: part of the content, so rows tell which primary wrote them. */
  private generation = 1;
  private readonly loops: Promise<void>[] = [];
  private readonly clients: Array<pg.Client | null> = [];

  private constructor(
    primary: PgCluster,
    private readonly ssl: pg.ClientConfig['ssl'],
  ) {
    this.port = primary.port;
  }

  /** `ssl`: node-postgres's TLS options, for a primary that takes TLS connections only. */
  static async start(primary: PgCluster, clients: number, ssl?: pg.ClientConfig['ssl']): Promise<Workload> {
    await primary.sql('create table if not exists acked (id bigint primary key, client int, content text, at timestamptz default now())');
    const w = new Workload(primary, ssl);
    for (let i = 0; i < clients; i++) {
      w.clients.push(await w.connect());
      w.loops.push(w.loop(i));
    }
    return w;
  }

  get count(): number {
    return this.acked.size;
  }

  /** Send the next transactions to `primary`: clients reconnect there once their connection fails. */
  retarget(primary: PgCluster): void {
    this.port = primary.port;
    this.generation++;
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000, ssl: this.ssl });
    c.on('error', () => {});
    await c.connect();
    return c;
  }

  private async loop(client: number): Promise<void> {
    while (this.running) {
      const id = this.nextId++;
      const content = `client ${client} generation ${this.generation}`;
      try {
        const c = (this.clients[client] ??= await this.connect());
        await c.query('insert into acked (id, client, content) values ($1, $2, $3)', [id, client, content]);
        this.acked.set(id, content);
      } catch (err) {
        this.errors.push((err as Error).message);
        // The connection may be gone (a crashed primary): the next try opens a new one.
        await this.clients[client]?.end().catch(() => {});
        this.clients[client] = null;
        await sleep(50);
      }
    }
  }

  /** Stop issuing; waits for the transactions in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c?.end().catch(() => {})));
  }
}

/** The quorum options of propose, sync-safekeepers and promote for these safekeepers. */
export function quorumArgs(safekeepers: readonly Safekeeper[]): string[] {
  return ['--safekeepers', safekeepers.map((s) => s.address).join(','), '--tenant', TENANT, '--timeline', TIMELINE];
}

/** `formatLsn` for messages. */
export const lsn = formatLsn;
