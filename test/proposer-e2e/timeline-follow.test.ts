// The proposer follows its primary onto a new PostgreSQL timeline: in front
// of a standby (cascading from a PostgreSQL primary) that is then promoted,
// the replication stream ends with the next timeline; the proposer ends its
// term, runs a new election on timeline 2, moves the safekeepers there and
// streams the new timeline's WAL.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseLsn } from '../../src/lsn.js';
import { chownToPg, pgTempDir, runPgOk, startCluster } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import { ProposerProc, quorumArgs, startQuorum } from './harness.js';

t.test('a promotion of the primary: new term on the new timeline', async (t) => {
  const q = await startQuorum(t);
  const root = pgTempDir('wk-follow-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dataDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(q.primary.port), '-U', 'postgres', '-D', dataDir, '-X', 'stream', '-c', 'fast', '--no-sync']);
  writeFileSync(join(dataDir, 'standby.signal'), '');
  chownToPg(join(dataDir, 'standby.signal'));
  const standby = await startCluster(t, {
    dataDir,
    conf: { primary_conninfo: `host=127.0.0.1 port=${q.primary.port} user=postgres`, hot_standby: 'on', synchronous_standby_names: '' },
  });
  const proposer = new ProposerProc(t, ['--primary', `host=127.0.0.1 port=${standby.port} user=postgres`, ...quorumArgs(q.safekeepers)]);
  proposer.start();
  await q.primary.sql('create table f (i int); insert into f select generate_series(1, 1000)');
  await proposer.waitLog('a quorum holds WAL of this term: commits flow', 0, 60_000);
  await waitFor('the standby to replay the rows', () => standby.sql('select count(*) from f').catch(() => ''), (v) => v === '1000');

  await standby.sql('select pg_promote(true, 60)');
  const ended = await proposer.waitLog('the primary switched PostgreSQL timelines: ending this term', 0, 60_000);
  t.equal(ended.timeline, 2, 'the term ended at the switch to timeline 2');
  const from = proposer.logs.indexOf(ended);
  await proposer.waitLog('a quorum holds WAL of this term: commits flow', from, 60_000);
  t.ok(proposer.lines('won the vote', from).length === 1, 'a new election was won');
  await standby.sql('set synchronous_commit = local; insert into f values (-1)');
  const x = parseLsn(await standby.sql("select pg_current_wal_flush_lsn()"));
  const st = await waitFor(
    'the safekeepers to hold timeline 2 WAL',
    () => Promise.all(q.safekeepers.map((s) => s.status())),
    (all) => all.every((s) => s.server.pg_timeline === 2 && parseLsn(s.commit_lsn) >= x),
    60_000,
  );
  t.same(st.map((s) => s.server.pg_timeline), [2, 2, 2], 'every safekeeper is on PostgreSQL timeline 2');
  const r = await proposer.stop();
  t.equal(r?.code, 0, 'and the proposer runs on (stops cleanly)');
});
