// A real PostgreSQL 15 primary's WAL for replication tests: a 1 MiB-segment
// cluster runs a workload with pg_switch_wal() in between, stops, and its
// pg_wal is copied (so segments before `end` are final).
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLsn, segmentFloor, type Lsn } from '../../src/lsn.js';
import { startCluster, type PgCluster, type Teardownable } from '../helpers/pg.js';

export const SEG = 1 << 20;

export interface PrimaryWal {
  systemId: bigint;
  /** Early position, before any workload. */
  s0: Lsn;
  /** Segment boundaries after pg_switch_wal(). */
  mid: Lsn;
  end: Lsn;
  /** Copy of pg_wal taken after the primary stopped. */
  walCopy: string;
}

/** pg_switch_wal(), then the segment boundary the WAL continues at. */
export async function switchWal(pg: PgCluster): Promise<Lsn> {
  const ret = parseLsn(await pg.sql('select pg_switch_wal()'));
  const floor = segmentFloor(ret, SEG);
  return floor === ret ? ret : floor + BigInt(SEG);
}

export async function makePrimaryWal(t: Teardownable): Promise<PrimaryWal> {
  const pg = await startCluster(t, { walSegSizeMb: 1, conf: { wal_keep_size: '1GB' } });
  const systemId = BigInt(await pg.sql('select system_identifier from pg_control_system()'));
  const s0 = parseLsn(await pg.sql('select pg_current_wal_lsn()'));
  await pg.pgbench(['-i', '-s', '1', '-q']);
  const mid = await switchWal(pg);
  await pg.pgbench(['-n', '-c', '2', '-t', '300']);
  await pg.sql('create table filler as select g, repeat(md5(g::text), 4) as s from generate_series(1, 20000) g');
  const end = await switchWal(pg);
  await pg.stop();
  const walCopy = mkdtempSync(join(tmpdir(), 'wk-walcopy-'));
  t.teardown(() => rmSync(walCopy, { recursive: true, force: true }));
  cpSync(pg.walDir, walCopy, { recursive: true });
  return { systemId, s0, mid, end, walCopy };
}
