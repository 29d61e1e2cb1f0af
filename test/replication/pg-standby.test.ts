// A real PostgreSQL 15 hot standby streams from the replication handler:
// it replays the WAL, follows the commit position as it moves, reports its
// progress and sends hot standby feedback that reaches the timeline.
import t from 'tap';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, parseLsn, segmentFloor, type Lsn } from '../../src/lsn.js';
import { FileWalSource } from '../../src/replication/file-source.js';
import { U64_MAX } from '../../src/protocol/layout.js';
import { chownToPg, pgTempDir, runPgOk, startCluster, type PgCluster } from '../helpers/pg.js';
import { ReplicationTestServer } from './pg-harness.js';
import { waitFor } from '../helpers/support.js';

const SEG = 1 << 20;

async function switchWal(pg: PgCluster): Promise<Lsn> {
  const ret = parseLsn(await pg.sql('select pg_switch_wal()'));
  const floor = segmentFloor(ret, SEG);
  return floor === ret ? ret : floor + BigInt(SEG);
}

t.test('a hot standby replays from walkeeper, follows the commit position and sends feedback', async (t) => {
  const primary = await startCluster(t, { walSegSizeMb: 1, conf: { wal_keep_size: '1GB' } });
  const systemId = BigInt(await primary.sql('select system_identifier from pg_control_system()'));
  await primary.sql('create table t (i int)');

  // A base backup without WAL: the standby must get all of it from walkeeper.
  const root = pgTempDir('wk-standby-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const standbyDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-X', 'none', '-c', 'fast', '--no-sync']);

  await primary.sql('insert into t select generate_series(1, 500)');
  const first = await switchWal(primary);
  await primary.sql('insert into t select generate_series(501, 1000)');
  const second = await switchWal(primary);
  await primary.stop();
  const walCopy = mkdtempSync(join(tmpdir(), 'wk-standby-wal-'));
  t.teardown(() => rmSync(walCopy, { recursive: true, force: true }));
  cpSync(primary.walDir, walCopy, { recursive: true });

  const source = new FileWalSource({ dir: walCopy, systemId, pgTimeline: 1, walSegSize: SEG, pgVersion: 150018, commitLsn: first });
  const server = await ReplicationTestServer.start({ source, keepaliveIntervalMs: 1000 });
  t.teardown(() => server.close(2000));

  writeFileSync(join(standbyDir, 'standby.signal'), '');
  chownToPg(join(standbyDir, 'standby.signal'));
  const standby = await startCluster(t, {
    dataDir: standbyDir,
    conf: {
      primary_conninfo: `host=127.0.0.1 port=${server.port} user=postgres application_name=wk_standby`,
      hot_standby: 'on',
      hot_standby_feedback: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
    },
  });

  const count = (): Promise<number> => standby.sql('select count(*) from t').then(Number);
  t.equal(await waitFor('the first batch to replay', count, (n) => n === 500), 500, 'replayed up to the commit position');
  const replayed = (): Promise<Lsn> => standby.sql('select pg_last_wal_replay_lsn()').then(parseLsn);
  t.ok((await replayed()) <= first, `replay stopped at the commit position (${formatLsn(first)})`);

  // The commit moves: the waiting sender wakes and the standby replays the rest.
  source.advance({ commit: second });
  t.equal(await waitFor('the second batch to replay', count, (n) => n === 1000), 1000, 'followed the commit position');

  // Progress and feedback reached the timeline.
  const reader = await waitFor(
    'status updates and hot standby feedback',
    () => source.readers.list().find((r) => r.applicationName === 'wk_standby'),
    (r) => r !== undefined && r.replicatedLsn === second && r.feedback !== null && r.feedback.xmin !== U64_MAX,
  );
  t.equal(reader!.status!.flushLsn, second, 'the standby reports flush = the commit position');
  const hs = source.readers.hsFeedback();
  t.ok(hs.xmin > 700n && hs.xmin < 1n << 32n, `feedback xmin ${hs.xmin} is a plausible full xid`);
  t.ok(hs.ts > 0n, 'with a timestamp');

  const rec = server.records.find((r) => r.params.application_name === 'wk_standby')!;
  t.equal(rec.queries[0], 'IDENTIFY_SYSTEM');
  t.match(rec.queries[rec.queries.length - 1], /^START_REPLICATION [0-9A-F]+\/[0-9A-F]+ TIMELINE 1$/);

  // Standby shutdown: it hangs up (Terminate), and its feedback stops counting.
  await standby.stop();
  await waitFor('the reader to detach', () => source.readers.size, (n) => n === 0, 10_000);
  t.same(source.readers.hsFeedback(), { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX });
  t.same(rec.outcomes[rec.outcomes.length - 1], 'close');
});
