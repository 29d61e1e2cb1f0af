// A timeline switch with real peers: the WAL of a promoted standby (now on
// timeline 2) is served, and pg_receivewal, still on timeline 1, streams to
// the fork, gets the end-of-timeline result, fetches the history file and
// carries on on timeline 2. What it writes must match the server's files.
import t from 'tap';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, parseLsn, segmentFileName, segmentFloor, segmentNumber, segmentOffset } from '../../src/lsn.js';
import { FileWalSource } from '../../src/replication/file-source.js';
import { parseHistory } from '../../src/wal/history.js';
import { chownToPg, pgTempDir, runPg, runPgOk, startCluster } from '../helpers/pg.js';
import { ReplicationTestServer } from './pg-harness.js';
import { SEG, switchWal } from './primary.js';
import { until } from '../helpers/support.js';

t.test('pg_receivewal follows a timeline switch: historic timeline end, TIMELINE_HISTORY, timeline 2', async (t) => {
  const primary = await startCluster(t, { walSegSizeMb: 1, conf: { wal_keep_size: '1GB' } });
  const systemId = BigInt(await primary.sql('select system_identifier from pg_control_system()'));
  const root = pgTempDir('wk-tli-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const standbyDir = join(root, 'data');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-X', 'stream', '-R', '-c', 'fast', '--no-sync']);
  const standby = await startCluster(t, { dataDir: standbyDir, conf: { hot_standby: 'on', wal_keep_size: '1GB' } });

  await primary.sql('create table t as select g from generate_series(1, 30000) g');
  await switchWal(primary);
  await primary.sql('insert into t select generate_series(1, 30000)');
  const last = parseLsn(await primary.sql('select pg_current_wal_flush_lsn()'));
  await until('the standby to catch up', async () => parseLsn(await standby.sql('select pg_last_wal_replay_lsn()')) >= last);
  await primary.stop();
  t.equal(await standby.sql('select pg_promote()'), 't');
  await until('promotion', async () => (await standby.sql('select pg_is_in_recovery()')) === 'f');
  await standby.sql('insert into t select generate_series(1, 20000)');
  const end = await switchWal(standby);
  await standby.stop();

  const walCopy = mkdtempSync(join(tmpdir(), 'wk-tli-wal-'));
  t.teardown(() => rmSync(walCopy, { recursive: true, force: true }));
  cpSync(join(standbyDir, 'pg_wal'), walCopy, { recursive: true });
  const historyText = readFileSync(join(walCopy, '00000002.history'), 'utf8');
  const [{ switchpoint }] = parseHistory(historyText);
  t.ok(switchpoint > 0n && switchpoint < end, `switched to timeline 2 at ${formatLsn(switchpoint)}`);

  const source = new FileWalSource({ dir: walCopy, systemId, pgTimeline: 2, walSegSize: SEG, pgVersion: 150018, commitLsn: end });
  const server = await ReplicationTestServer.start({ source });
  t.teardown(() => server.close());

  // The client was on timeline 1: it resumes at its highest .partial segment, a whole segment before the fork.
  const out = pgTempDir('wk-tli-recv-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const resumeAt = segmentFloor(switchpoint, SEG) - BigInt(SEG);
  const tli1Seg = segmentFileName(1, segmentNumber(resumeAt, SEG), SEG);
  writeFileSync(join(out, tli1Seg + '.partial'), '');
  chownToPg(out);

  const r = await runPg(
    'pg_receivewal',
    ['-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', '-D', out, '--no-loop', '--no-sync', '-v', '-E', formatLsn(end - 1n)],
    { timeoutMs: 60_000 },
  );
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `switched to timeline 2 at ${formatLsn(switchpoint)}`);

  const q = server.records[0].queries;
  t.ok(q.includes(`START_REPLICATION ${formatLsn(resumeAt)} TIMELINE 1`), 'streamed timeline 1 from where it was');
  t.ok(q.includes('TIMELINE_HISTORY 2'), 'fetched the history file');
  t.equal(q[q.length - 1], `START_REPLICATION ${formatLsn(segmentFloor(switchpoint, SEG))} TIMELINE 2`, 'went on on timeline 2 at the segment of the fork');
  t.equal(server.records[0].outcomes.filter((o) => o === 'close').length, 0, 'one connection throughout');

  t.equal(readFileSync(join(out, '00000002.history'), 'utf8'), historyText, 'history file as served');
  t.ok(readFileSync(join(out, tli1Seg)).equals(readFileSync(join(walCopy, tli1Seg))), `${tli1Seg} (timeline 1) identical`);
  // The timeline 1 segment holding the fork stays partial; up to the fork it is the server's.
  const forkSeg1 = segmentFileName(1, segmentNumber(switchpoint, SEG), SEG);
  const forkSeg2 = segmentFileName(2, segmentNumber(switchpoint, SEG), SEG);
  const partial = readFileSync(join(out, forkSeg1 + '.partial'));
  const cut = segmentOffset(switchpoint, SEG);
  t.ok(partial.subarray(0, cut).equals(readFileSync(join(walCopy, forkSeg2)).subarray(0, cut)), `${forkSeg1}.partial up to the fork`);
  t.ok(partial.subarray(cut).every((b) => b === 0), 'and nothing after it');
  const tli2 = readdirSync(out).filter((f) => f.startsWith('00000002') && !f.endsWith('.partial') && !f.endsWith('.history'));
  t.same(tli2, Array.from({ length: Number(segmentNumber(end, SEG) - segmentNumber(switchpoint, SEG)) }, (_, i) => segmentFileName(2, segmentNumber(switchpoint, SEG) + BigInt(i), SEG)));
  t.ok(tli2.length >= 1, `${tli2.length} complete timeline 2 segments`);
  for (const f of tli2) t.ok(readFileSync(join(out, f)).equals(readFileSync(join(walCopy, f))), `${f} (timeline 2) identical`);
});
