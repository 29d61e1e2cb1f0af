// A point-in-time recovery scenario with real PostgreSQL 15, shared by the
// PITR test and the archive benchmark: a primary, a base backup taken at
// the start (pg_basebackup -X none: every WAL byte must come through
// restore_command), a load of numbered transactions whose xids are
// recorded, and recovery of a copy of the backup to one of them.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pgTempDir, runPgOk, startCluster, chownToPg, type Teardownable, type PgCluster } from '../helpers/pg.js';
import { sleep } from '../helpers/support.js';

export interface Transaction {
  id: number;
  xid: string;
}

export interface PitrSource {
  /** The primary's pg_wal after the load (the primary is stopped). */
  walDir: string;
  /** The base backup, untouched: recover a copy of it (copyBackup). */
  backupDir: string;
  transactions: Transaction[];
  /** Complete segments holding the load, in order (the last one ends after the last transaction). */
  segments: string[];
  walSegSize: number;
}

export interface PitrOptions {
  transactions: number;
  /** Rows of filler per transaction (~70 bytes of WAL each), so the load spans many segments. */
  fillerRows: number;
  walSegSizeMb: number;
}

export async function preparePitr(t: Teardownable, o: PitrOptions): Promise<PitrSource> {
  const primary = await startCluster(t, {
    walSegSizeMb: o.walSegSizeMb,
    conf: { wal_keep_size: '10GB', max_wal_size: '10GB', checkpoint_timeout: '1h', wal_level: 'replica' },
  });
  await primary.sql('create table marks (id int primary key, xid bigint not null); create table filler (n int, pad text)');
  const backupDir = join(pgTempDir('wk-pitr-backup-'), 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', backupDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  const transactions: Transaction[] = [];
  for (let id = 1; id <= o.transactions; id++) {
    // One transaction: the filler and the mark, then its xid.
    const xid = await primary.sql(
      `insert into filler select g, repeat('p', 40) from generate_series(1, ${o.fillerRows}) g; insert into marks select ${id}, txid_current() returning xid`,
    );
    transactions.push({ id, xid });
  }
  const current = await primary.sql('select pg_walfile_name(pg_current_wal_insert_lsn())');
  await primary.sql('select pg_switch_wal()');
  await primary.stop();
  const walDir = primary.walDir;
  const segments = readdirSync(walDir)
    .filter((n) => /^[0-9A-F]{24}$/.test(n) && n <= current)
    .sort();
  return { walDir, backupDir, transactions, segments, walSegSize: o.walSegSizeMb << 20 };
}

/** A fresh copy of the base backup, owned by the PostgreSQL user. */
export function copyBackup(src: PitrSource): string {
  const dir = join(pgTempDir('wk-pitr-recover-'), 'data');
  execFileSync('cp', ['-a', src.backupDir, dir]);
  chownToPg(dir);
  return dir;
}

export interface Recovery {
  cluster: PgCluster;
  /** Wall time from start to promotion. */
  ms: number;
}

/**
 * Start the copy in targeted recovery with `restoreCommand` and wait until
 * it has promoted (recovery_target_action = promote).
 */
export async function recoverTo(t: Teardownable, dataDir: string, restoreCommand: string, targetXid: string, timeoutMs = 300_000): Promise<Recovery> {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dataDir, 'recovery.signal'), '');
  chownToPg(join(dataDir, 'recovery.signal'));
  const started = Date.now();
  const cluster = await startCluster(t, {
    dataDir,
    conf: { restore_command: restoreCommand, recovery_target_xid: targetXid, recovery_target_action: 'promote', hot_standby: 'on' },
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await cluster.sql('select pg_is_in_recovery()')) === 'f') break;
    if (Date.now() > deadline) throw new Error(`recovery did not finish within ${timeoutMs / 1000} s (log: ${cluster.logFile})`);
    await sleep(50);
  }
  return { cluster, ms: Date.now() - started };
}
