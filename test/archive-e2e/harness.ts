// End-to-end harness for the WAL lifecycle: a PostgreSQL 15 primary (1 MiB
// segments) whose synchronous standby is `walkeeper propose`, three
// safekeepers archiving to a real S3-protocol server (s3rver) or a
// directory, and the checks the lifecycle tests share: what is in the
// archive, what is on each safekeeper's disk, status fields and metrics.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { formatLsn, parseLsn, parseSegmentFileName, segmentFileName, segmentNumber, segmentStart, type Lsn } from '../../src/lsn.js';
import { decodeObject, objectKey } from '../../src/archive/object-format.js';
import { openRemoteStorage } from '../../src/archive/open.js';
import type { RemoteStorage } from '../../src/archive/remote-storage.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../../support/s3-server.js';
import { startDaemon, TENANT, TIMELINE, type DaemonProc } from '../daemon/helpers.js';
import { chownToPg, pgTempDir, runPgOk, startCluster, type PgCluster } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import { ProposerProc, Safekeeper, startQuorum } from '../proposer-e2e/harness.js';
import { metrics, metricValue, type TimelineStatus } from '../archive/daemon-helpers.js';

export { TENANT, TIMELINE };
export const SEG = 1 << 20;
export const BUCKET = 'walkeeper-test';
/** The archive prefix inside the bucket: keys are `e2e/<tenant>/<timeline>/<file>`. */
export const PREFIX = 'e2e';

// The daemons (children) and this process (reading the bucket) use the test server's key pair.
Object.assign(process.env, S3_TEST_CREDENTIALS);

// ---------------------------------------------------------------- the archive

export interface Archive {
  /** `--remote-storage` value. */
  url: string;
  /** `--remote-storage-endpoint` value (S3 only). */
  endpoint?: string;
  /** The test's own view of it, through the project's backend. */
  storage: RemoteStorage;
  /** The s3rver process (S3 only): kill() for an outage, resume() to end it. */
  server?: S3TestServer;
  /** The flags a daemon needs to archive here. */
  args: string[];
}

export async function startS3Archive(t: Test): Promise<Archive> {
  const server = await S3TestServer.start(BUCKET);
  t.teardown(() => server.close());
  const url = `s3://${BUCKET}/${PREFIX}`;
  const storage = await openRemoteStorage({ url, endpoint: server.endpoint });
  t.teardown(() => storage.close());
  return { url, endpoint: server.endpoint, storage, server, args: ['--remote-storage', url, '--remote-storage-endpoint', server.endpoint] };
}

/** A directory archive the PostgreSQL user can read (restore_command runs as that user). */
export async function startDirArchive(t: Test): Promise<Archive> {
  const dir = pgTempDir('wk-archive-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const url = `file://${dir}`;
  const storage = await openRemoteStorage({ url });
  return { url, storage, args: ['--remote-storage', url] };
}

export function segmentKey(segno: bigint): string {
  return objectKey(TENANT, TIMELINE, segmentFileName(1, segno, SEG));
}

/** Segment numbers archived for the timeline (history files and others left out). */
export async function archivedSegments(storage: RemoteStorage): Promise<bigint[]> {
  const keys = await storage.list(`${TENANT}/${TIMELINE}/`);
  const out: bigint[] = [];
  for (const k of keys) {
    const s = parseSegmentFileName(k.slice(k.lastIndexOf('/') + 1), SEG);
    if (s && s.timeline === 1) out.push(s.segno);
  }
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The decoded, verified file of an archived segment; null when there is no object; throws when it does not verify. */
export async function archivedSegment(storage: RemoteStorage, segno: bigint): Promise<Buffer | null> {
  const key = segmentKey(segno);
  const info = await storage.head(key);
  if (!info) return null;
  const body = await storage.get(key);
  if (!body) return null;
  return decodeObject(key, body, info.metadata);
}

/**
 * Segments [from, to) of the archive against the primary's pg_wal: the
 * names of those missing, not verifying or different (empty when all match).
 */
export async function compareArchive(storage: RemoteStorage, primary: PgCluster, from: bigint, to: bigint): Promise<string[]> {
  const bad: string[] = [];
  for (let s = from; s < to; s++) {
    const name = segmentFileName(1, s, SEG);
    let file: Buffer | null;
    try {
      file = await archivedSegment(storage, s);
    } catch (err) {
      bad.push(`${name}: ${(err as Error).message}`);
      continue;
    }
    if (!file) bad.push(`${name}: not in the archive`);
    else if (!file.equals(readFileSync(join(primary.walDir, name)))) bad.push(`${name}: differs from the primary's`);
  }
  return bad;
}

// ---------------------------------------------------------------- safekeepers

/** A safekeeper of the quorum harness, started with archive flags, keeping its log lines across restarts. */
export class ArchivingSafekeeper extends Safekeeper {
  /** Log lines of the runs that ended, in order. */
  private readonly logs: Array<Record<string, unknown>> = [];
  private readonly kept = new Set<DaemonProc>();

  constructor(
    private readonly test: Test,
    index: number,
    pgPort: number,
    httpPort: number,
    root: string,
    public args: string[],
  ) {
    super(test, index, pgPort, httpPort, root);
  }

  get timelineDir(): string {
    return join(this.dataDir, TENANT, TIMELINE);
  }

  override async start(): Promise<void> {
    if (this.proc) return;
    mkdirSync(this.dataDir, { recursive: true });
    const proc = await startDaemon(this.test, { dataDir: this.dataDir, pgPort: this.pgPort, httpPort: this.httpPort, args: this.args });
    this.proc = proc;
    this.test.teardown(() => this.keepLogs(proc));
    const keep = process.env.WK_ARCHIVE_LOG;
    if (keep) this.test.teardown(() => writeFileSync(`${keep}.sk${this.index}`, proc.logs.map((l) => JSON.stringify(l)).join('\n') + '\n' + proc.stderr(), { flag: 'a' }));
  }

  override async kill9(): Promise<void> {
    const p = this.proc;
    await super.kill9();
    if (p) this.keepLogs(p);
  }

  private keepLogs(proc: DaemonProc): void {
    if (this.kept.has(proc)) return;
    this.kept.add(proc);
    this.logs.push(...proc.logs);
  }

  /** Log lines of all runs so far whose message starts with `prefix`. */
  lines(prefix: string): Array<Record<string, unknown>> {
    const current = this.proc && !this.kept.has(this.proc) ? this.proc.logs : [];
    return [...this.logs, ...current].filter((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix));
  }

  /** The value of a metric for this timeline (NaN when absent). */
  async metric(name: string): Promise<number> {
    if (!this.proc) throw new Error(`${this.address} is down`);
    return metricValue(await metrics(this.proc), name) ?? NaN;
  }

  /** Segment numbers of the segment files (complete or .partial) in the timeline directory. */
  localSegments(): bigint[] {
    if (!existsSync(this.timelineDir)) return [];
    const out: bigint[] = [];
    for (const f of readdirSync(this.timelineDir)) {
      const s = parseSegmentFileName(f.replace(/\.partial$/, ''), SEG);
      if (s && s.timeline === 1) out.push(s.segno);
    }
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

// ---------------------------------------------------------------- the whole setup

export interface LifecycleSetup {
  primary: PgCluster;
  archive: Archive;
  safekeepers: ArchivingSafekeeper[];
  proposer: ProposerProc;
}

/**
 * A primary, an archive, three archiving safekeepers (`skArgs(i)` added to
 * each one's flags) and the proposer (not started).
 */
export async function startLifecycle(t: Test, opts: { archive: Archive; skArgs?: (i: number) => string[] }): Promise<LifecycleSetup> {
  const { primary, safekeepers, proposer } = await startQuorum(t, {
    cluster: { conf: { autovacuum: 'off' } },
    makeSafekeeper: (i: number, pgPort: number, httpPort: number, root: string) => new ArchivingSafekeeper(t, i, pgPort, httpPort, root, [...opts.archive.args, ...(opts.skArgs?.(i) ?? [])]),
  });
  return { primary, archive: opts.archive, safekeepers, proposer };
}

/** Start the proposer; resolves to where the fresh timeline's WAL starts. */
export async function startProposer(proposer: ProposerProc): Promise<Lsn> {
  proposer.start();
  const fresh = await proposer.waitLog('fresh timeline: every voter is empty; WAL starts here');
  return parseLsn(String(fresh.startLsn));
}

/** A base backup of the primary without WAL, owned by the PostgreSQL user; removed at teardown. */
export async function baseBackup(t: Test, primary: PgCluster, prefix: string): Promise<string> {
  const root = pgTempDir(prefix);
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dataDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  return dataDir;
}

/** Start a PostgreSQL server on a base backup, with a signal file (standby/recovery) and settings. */
export async function startFromBackup(t: Test, dataDir: string, signal: 'standby.signal' | 'recovery.signal', conf: Record<string, string | number>): Promise<PgCluster> {
  writeFileSync(join(dataDir, signal), '');
  chownToPg(join(dataDir, signal));
  return startCluster(t, { dataDir, conf: { synchronous_standby_names: '', ...conf } });
}

/** The primary's WAL flush position. */
export async function primaryFlush(primary: PgCluster): Promise<Lsn> {
  return parseLsn(await primary.sql('select pg_current_wal_flush_lsn()'));
}

/**
 * Load through pgbench (TPC-B, 2 clients, `tx` transactions each per round)
 * and a bulk insert of `fillerRows` rows (about 200 bytes of WAL each) per
 * round until the primary's WAL reaches `target`; `sample` runs between
 * rounds. Bounded by rounds, not time: the amount of WAL decides.
 */
export async function pgbenchUntil(primary: PgCluster, target: Lsn, tx: number, sample: () => Promise<void>, fillerRows = 12_000): Promise<number> {
  let rounds = 0;
  while ((await primaryFlush(primary)) < target) {
    if (++rounds > 200) throw new Error(`pgbench: ${rounds} rounds and the WAL is still below ${formatLsn(target)}`);
    await primary.pgbench(['-n', '-c', '2', '-j', '1', '-t', String(tx)]);
    // The bulk insert makes every round worth a few segments however fast pgbench is.
    if (fillerRows > 0) await primary.sql(`insert into filler select g, repeat(md5(g::text), 4) from generate_series(1, ${fillerRows}) g`);
    await sample();
  }
  return rounds;
}

/** Wait until every safekeeper's backup_lsn reaches `lsn`. */
export async function waitBackup(sks: ArchivingSafekeeper[], lsn: Lsn, timeoutMs = 60_000): Promise<void> {
  for (const sk of sks) {
    let last: TimelineStatus | undefined;
    await waitFor(`${sk.address}: backup_lsn to reach ${formatLsn(lsn)}`, () => sk.status().then((s) => (last = s)), (s) => parseLsn(s.backup_lsn) >= lsn, timeoutMs, 200).catch((err: Error) => {
      throw new Error(`${err.message}; last status: backup_lsn ${last?.backup_lsn}, local_start_lsn ${last?.local_start_lsn}, archive ${JSON.stringify(last?.archive)}`);
    });
  }
}

/** The segment a position is in / the first segment wholly at or after it. */
export function segOf(lsn: Lsn): bigint {
  return segmentNumber(lsn, SEG);
}

export function segStart(segno: bigint): Lsn {
  return segmentStart(segno, SEG);
}
