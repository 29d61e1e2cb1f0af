// The removal horizon, one term at a time: each test makes one term the
// lowest and checks that removal goes exactly to it (oldest first, the
// local start moved with it), then lifts it where that is part of the term.
import t from 'tap';
import { existsSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { removalHorizon } from '../../src/archive/horizon.js';
import { startDaemon, tempDir } from '../daemon/helpers.js';
import { connectPusher, heartbeat, lsnText, metrics, metricValue, MiB, pushRange, segName, synthWal, timelineDir, waitStatus } from './daemon-helpers.js';

t.test('removalHorizon: the lowest of the terms', (t) => {
  const base = { restartLsn: 10n * MiB, flushLsn: 20n * MiB, commitLsn: 20n * MiB, walSegSize: 1 << 20, keepSize: 4 * (1 << 20) };
  t.equal(removalHorizon({ ...base, archivedBelow: 5n * MiB }), 5n * MiB, 'backup_lsn');
  t.equal(removalHorizon({ ...base, archivedBelow: null }), 10n * MiB, 'restart_lsn without an archive');
  t.equal(removalHorizon({ ...base, archivedBelow: 30n * MiB, restartLsn: 0n }), 16n * MiB, 'with an archive restart_lsn does not hold WAL back');
  t.equal(removalHorizon({ ...base, archivedBelow: null, restartLsn: 19n * MiB }), 16n * MiB, 'wal-keep-size below flush_lsn');
  t.equal(removalHorizon({ ...base, archivedBelow: null, restartLsn: 0n }), 0n, 'no restart_lsn yet: nothing');
  t.equal(
    removalHorizon({ ...base, archivedBelow: null, restartLsn: 30n * MiB, keepSize: 0, commitLsn: 12n * MiB + 5n }),
    12n * MiB,
    'the segment holding commit_lsn stays (the end-of-WAL scan starts there)',
  );
  t.end();
});

const localSegments = (dir: string) => readdirSync(dir).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).sort();

t.test('backup_lsn: only archived WAL is removed', async (t) => {
  const wal = synthWal(7, 4);
  const archiveDir = tempDir(t, 'wk-rm-b-store-');
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rm-b-'), noSync: true, args: ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  // restart_lsn at the end: only backup_lsn (commit_lsn in segment 4) holds WAL back.
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, commit: 4n * MiB + 100n, restart: wal.endLsn });
  let s = await waitStatus(d, 'segments 1..3 removed', (s) => s.segments_removed === 3);
  t.equal(s.backup_lsn, lsnText(4n * MiB));
  t.equal(s.local_start_lsn, lsnText(4n * MiB), 'the local start is backup_lsn');
  t.equal(localSegments(timelineDir(d))[0], segName(4n), 'oldest local segment');
  t.equal(s.archive?.segments_removed, 3);
  await heartbeat(p, wal.endLsn, wal.endLsn);
  s = await waitStatus(d, 'segments up to 7 removed', (s) => s.segments_removed === 7);
  t.equal(s.local_start_lsn, lsnText(8n * MiB));
  t.equal(metricValue(await metrics(d), 'walkeeper_wal_segments_removed_total'), 7);
  t.equal(metricValue(await metrics(d), 'walkeeper_local_start_lsn'), Number(8n * MiB));
  p.client.close();
});

t.test('restart_lsn: without an archive, WAL not yet on every safekeeper stays', async (t) => {
  const wal = synthWal(7, 5);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rm-r-'), noSync: true, args: ['--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, commit: wal.endLsn, restart: 3n * MiB + 100n });
  let s = await waitStatus(d, 'segments 1 and 2 removed', (s) => s.segments_removed === 2);
  t.equal(s.archive, null, 'no archive');
  t.equal(s.backup_lsn, '0/0');
  t.equal(s.local_start_lsn, lsnText(3n * MiB));
  t.ok(existsSync(join(timelineDir(d), segName(3n))), 'the segment holding restart_lsn stays');
  await heartbeat(p, wal.endLsn, 6n * MiB);
  s = await waitStatus(d, 'segments up to 5 removed', (s) => s.segments_removed === 5);
  t.equal(s.local_start_lsn, lsnText(6n * MiB));
  p.client.close();
});

t.test('--wal-keep-size: that much WAL below flush_lsn stays', async (t) => {
  const wal = synthWal(7, 6);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rm-s-'), noSync: true, args: ['--wal-keep-size', '2MB'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, commit: wal.endLsn, restart: wal.endLsn });
  // flush_lsn is 8 MiB + a little: WAL from 6 MiB + a little must stay, so segment 6 does.
  const s = await waitStatus(d, 'segments 1..5 removed', (s) => s.segments_removed === 5);
  t.equal(s.local_start_lsn, lsnText(6n * MiB));
  t.equal(localSegments(timelineDir(d))[0], segName(6n));
  p.client.close();
});

t.test('--wal-keep-time: a segment stays that long after it was completed', async (t) => {
  const wal = synthWal(5, 7);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rm-t-'), noSync: true, args: ['--wal-keep-size', '0', '--wal-keep-time', '1h'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, commit: wal.endLsn, restart: wal.endLsn });
  // Every other term allows removing segments 1..5; make 1 and 2 completed two hours ago.
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  for (const segno of [1n, 2n]) utimesSync(join(timelineDir(d), segName(segno)), twoHoursAgo, twoHoursAgo);
  const s = await waitStatus(d, 'the two old segments removed', (s) => s.segments_removed === 2);
  t.equal(s.local_start_lsn, lsnText(3n * MiB), 'the fresh segments stay');
  t.ok(existsSync(join(timelineDir(d), segName(3n))));
  p.client.close();
});
