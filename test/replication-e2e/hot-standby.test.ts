// A real PostgreSQL 15 hot standby whose only WAL source is the real daemon:
// it is a base backup of a live primary (without WAL), and a proposer feeds
// the primary's WAL to walkeeper. The standby replays it, answers queries
// with the rows committed on the primary (and only up to commit_lsn), and
// its hot standby feedback travels back to the proposer in every
// SafeKeeperResponse.
import t from 'tap';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { formatLsn, parseLsn, type Lsn } from '../../src/lsn.js';
import { U64_MAX } from '../../src/protocol/layout.js';
import { chownToPg, pgTempDir, runPgOk, startCluster } from '../helpers/pg.js';
import { tempDir } from '../daemon/helpers.js';
import { randomChunks } from './feeder.js';
import { electFeeder, flushLsn, readerConn, startPrimary, startWalkeeper } from './helpers.js';
import { waitFor, xorshift32 } from '../helpers/support.js';

t.test('a hot standby streams from the daemon, replays the primary commits and its feedback reaches the proposer', async (t) => {
  const p = await startPrimary(t);
  await p.pg.sql('create table t (id int primary key, tag text)');
  await p.pg.sql(`insert into t select g, 'before backup' from generate_series(1, 1000) g`);

  // A base backup without WAL: everything the standby replays comes from walkeeper.
  const root = pgTempDir('wk-e2e-standby-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const standbyDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(p.pg.port), '-U', 'postgres', '-D', standbyDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  await p.pg.sql(`insert into t select g, 'after backup' from generate_series(1001, 3000) g`);

  const wk = await startWalkeeper(t, tempDir(t, 'wk-e2e-standby-data-'));
  const feeder = await electFeeder(t, p, wk);
  const chunks = randomChunks(xorshift32(7));
  await feeder.push(await flushLsn(p.pg), { chunks });

  writeFileSync(join(standbyDir, 'standby.signal'), '');
  chownToPg(join(standbyDir, 'standby.signal'));
  const standby = await startCluster(t, {
    dataDir: standbyDir,
    conf: {
      primary_conninfo: readerConn(wk, 'application_name=wk_e2e_standby'),
      hot_standby: 'on',
      hot_standby_feedback: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
    },
  });
  const count = (where = 'true'): Promise<number> => standby.sql(`select count(*) from t where ${where}`).then(Number);
  t.equal(await waitFor('the standby to replay the first push', () => count(), (n) => n === 3000), 3000, 'rows committed on the primary before and after the backup');
  const receiver = await standby.sql('select status, sender_port from pg_stat_wal_receiver');
  t.equal(receiver, `streaming|${wk.pgPort}`, 'the standby streams from walkeeper');

  // New rows on the primary, pushed with commit_lsn held before their commit record: not visible yet.
  const before = await flushLsn(p.pg);
  await p.pg.sql(`insert into t select g, 'second batch' from generate_series(3001, 5000) g`);
  const after = await flushLsn(p.pg);
  await feeder.push(after, { chunks, maxCommit: before });
  t.equal(feeder.commitSent, before, 'commit_lsn held at the position before the insert');
  const received = (): Promise<Lsn> => standby.sql('select pg_last_wal_receive_lsn()').then(parseLsn);
  await waitFor('the standby to receive up to the commit position', received, (l) => l >= before);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await received(), before, `the standby received exactly up to commit_lsn ${formatLsn(before)}, not the flush position ${formatLsn(after)}`);
  t.equal(await count(`tag = 'second batch'`), 0, 'the uncommitted batch is not visible');

  // The commit moves: the rows appear.
  await feeder.heartbeat();
  t.equal(await waitFor('the second batch to replay', () => count(`tag = 'second batch'`), (n) => n === 2000), 2000, 'the second batch is visible once committed');

  // Hot standby feedback: a transaction on the standby holds a snapshot; its xmin must come
  // back to the proposer (as a full xid) in the SafeKeeperResponse and hold there while the
  // primary moves on.
  const session = new pg.Client({ host: '127.0.0.1', port: standby.port, user: 'postgres', database: 'postgres' });
  await session.connect();
  t.teardown(() => session.end().catch(() => {}));
  await session.query('begin isolation level repeatable read');
  const snap = await session.query<{ xmin: string }>('select txid_snapshot_xmin(txid_current_snapshot())::text as xmin');
  const snapXmin = BigInt(snap.rows[0].xmin);
  t.ok(snapXmin > 700n, `the standby snapshot xmin is ${snapXmin}`);
  const held = await waitFor(
    'the feedback xmin in the proposer responses',
    async () => (await feeder.heartbeat()).hsFeedback,
    (hs) => hs.xmin !== U64_MAX && hs.xmin <= snapXmin,
    20_000,
    200,
  );
  t.ok(held.xmin > 700n && held.xmin <= snapXmin, `SafeKeeperResponse.hsFeedback.xmin = ${held.xmin}, a real xid (snapshot xmin ${snapXmin})`);
  t.ok(held.ts > 0n, 'with the standby timestamp');

  // The primary runs more transactions; they are pushed and replayed, the feedback does not move past the open snapshot.
  for (let i = 0; i < 5; i++) await p.pg.sql(`insert into t values (${6000 + i}, 'later')`);
  const primaryNext = BigInt(await p.pg.sql('select txid_current()'));
  await feeder.push(await flushLsn(p.pg), { chunks });
  await waitFor('the later rows to replay', () => count(`tag = 'later'`), (n) => n === 5);
  await new Promise((r) => setTimeout(r, 1500));
  const still = (await feeder.heartbeat()).hsFeedback;
  t.ok(still.xmin <= snapXmin, `feedback xmin ${still.xmin} still held by the open snapshot (primary is at ${primaryNext})`);

  // The standby transaction ends: its next feedback moves xmin forward, past the old snapshot.
  await session.query('commit');
  const moved = await waitFor(
    'the feedback xmin to advance',
    async () => (await feeder.heartbeat()).hsFeedback,
    (hs) => hs.xmin !== U64_MAX && hs.xmin > snapXmin,
    20_000,
    200,
  );
  t.ok(moved.xmin > snapXmin && moved.xmin <= primaryNext + 1n, `feedback xmin advanced to ${moved.xmin} (primary txid ${primaryNext})`);

  // The standby stops: its feedback no longer holds anything back.
  await session.end();
  await standby.stop();
  const cleared = await waitFor('the feedback to clear', async () => (await feeder.heartbeat()).hsFeedback, (hs) => hs.xmin === U64_MAX, 10_000, 200);
  t.equal(cleared.catalogXmin, U64_MAX, 'no reader left: xmin and catalog_xmin are u64::MAX again');
});
