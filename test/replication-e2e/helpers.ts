// End-to-end replication tests: a live PostgreSQL 15 primary, the real
// daemon (`node bin/walkeeper.js run`, so `npm run build` first), a proposer
// feeding it the primary's WAL, and real PostgreSQL readers on the other side.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { parseLsn, parseSegmentFileName, segmentFileName, segmentNumber, segmentOffset, segmentStart, type Lsn } from '../../src/lsn.js';
import { startCluster, type PgCluster } from '../helpers/pg.js';
import { startDaemon, type DaemonProc } from '../daemon/helpers.js';
import { readWal, WalFeeder } from './feeder.js';

export const SEG = 1 << 20;
export const TENANT = 'e2e0'.repeat(8);
export const TIMELINE = '5eed'.repeat(8);
/** What a reader puts in its connection string to name the timeline. */
export const NAMED = `options='-c ztimelineid=${TIMELINE} -c ztenantid=${TENANT}'`;

export interface Primary {
  pg: PgCluster;
  systemId: bigint;
  pgVersion: number;
  /** Start of the oldest segment in pg_wal: where the proposer starts pushing. */
  firstLsn: Lsn;
}

/** A running primary with 1 MiB segments that keeps all its WAL. */
export async function startPrimary(t: Test): Promise<Primary> {
  const pg = await startCluster(t, {
    walSegSizeMb: 1,
    conf: { wal_keep_size: '2GB', max_wal_size: '2GB', checkpoint_timeout: '1h', autovacuum: 'off' },
  });
  const systemId = BigInt(await pg.sql('select system_identifier from pg_control_system()'));
  const pgVersion = Number(await pg.sql('show server_version_num'));
  let lowest: bigint | null = null;
  for (const f of readdirSync(pg.walDir)) {
    const s = parseSegmentFileName(f, SEG);
    if (s && s.timeline === 1 && (lowest === null || s.segno < lowest)) lowest = s.segno;
  }
  if (lowest === null) throw new Error('the primary has no WAL segment');
  return { pg, systemId, pgVersion, firstLsn: segmentStart(lowest, SEG) };
}

/** The primary's WAL flush position: everything before it is final in pg_wal. */
export async function flushLsn(pg: PgCluster): Promise<Lsn> {
  return parseLsn(await pg.sql('select pg_current_wal_flush_lsn()'));
}

/** The real daemon, with fsync unless `noSync`. */
export function startWalkeeper(t: Test, dataDir: string, noSync = false): Promise<DaemonProc> {
  return startDaemon(t, { dataDir, noSync });
}

/** A proposer elected on the daemon's timeline, pushing from the primary's oldest segment. */
export async function electFeeder(t: Test, p: Primary, wk: DaemonProc): Promise<WalFeeder> {
  const f = await WalFeeder.elect(
    { port: wk.pgPort, tenantId: TENANT, timelineId: TIMELINE, walDir: p.pg.walDir, systemId: p.systemId, segSize: SEG, pgVersion: p.pgVersion },
    p.firstLsn,
  );
  t.teardown(() => f.client.close());
  return f;
}

/** libpq connection string for a reader of the daemon's timeline. */
export function readerConn(wk: DaemonProc, extra = ''): string {
  return `host=127.0.0.1 port=${wk.pgPort} user=postgres ${NAMED} ${extra}`.trim();
}

export { spawnPg, type Background } from '../helpers/pg.js';

/** A segment file of a pg_receivewal directory: the `.partial` one while it is being written. */
function receivedSegment(dir: string, segno: bigint): Buffer | null {
  const name = segmentFileName(1, segno, SEG);
  for (const f of [name, name + '.partial']) {
    const path = join(dir, f);
    if (existsSync(path)) {
      try {
        return readFileSync(path);
      } catch {
        /* renamed under us: try the other name */
      }
    }
  }
  return null;
}

/** Whether `dir` (pg_receivewal's) holds exactly the primary's WAL in [from, to). */
export function receivedMatches(dir: string, walDir: string, from: Lsn, to: Lsn): boolean {
  if (to <= from) return true;
  const want = readWal(walDir, from, to, SEG);
  let pos = 0;
  while (pos < want.length) {
    const lsn = from + BigInt(pos);
    const seg = receivedSegment(dir, segmentNumber(lsn, SEG));
    const off = segmentOffset(lsn, SEG);
    const n = Math.min(SEG - off, want.length - pos);
    if (!seg || seg.length < off + n || !seg.subarray(off, off + n).equals(want.subarray(pos, pos + n))) return false;
    pos += n;
  }
  return true;
}

export interface ReceivedCheck {
  /** Complete segment files, sorted. */
  complete: string[];
  /** How many of them are byte-identical to the primary's segment of the same name. */
  identical: number;
  /** The `.partial` file, if any. */
  partial: string | null;
  /** Its bytes up to `upTo` equal the primary's. */
  partialOk: boolean;
}

/** Compare every file pg_receivewal wrote with the primary's pg_wal (a `.partial` one up to `upTo`). */
export function checkReceived(dir: string, walDir: string, upTo: Lsn): ReceivedCheck {
  const out: ReceivedCheck = { complete: [], identical: 0, partial: null, partialOk: false };
  for (const f of readdirSync(dir).sort()) {
    const isPartial = f.endsWith('.partial');
    const name = isPartial ? f.slice(0, -'.partial'.length) : f;
    const s = parseSegmentFileName(name, SEG);
    if (!s) continue;
    if (isPartial) {
      out.partial = f;
      const start = segmentStart(s.segno, SEG);
      const n = Number(upTo - start);
      const ours = readFileSync(join(dir, f));
      out.partialOk = n > 0 && n <= SEG && ours.subarray(0, n).equals(readWal(walDir, start, upTo, SEG));
    } else {
      out.complete.push(f);
      if (readFileSync(join(dir, f)).equals(readFileSync(join(walDir, f)))) out.identical++;
    }
  }
  return out;
}

