// Several safekeepers upload the same committed segments: an identical
// archived object is counted as archived, a different one is a conflict
// (status, metric, log) and is never overwritten; the prefix and removal
// stop before it. The verify pass puts back an object deleted from the
// archive, and archives timeline history files once.
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { encodeObject, objectKey } from '../../src/archive/object-format.js';
import { startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { until } from '../helpers/support.js';
import {
  archivedFile,
  connectPusher,
  heartbeat,
  lsnText,
  metrics,
  metricValue,
  MiB,
  pushRange,
  segName,
  sourceSegment,
  synthWal,
  timelineDir,
  waitStatus,
} from './daemon-helpers.js';

t.test('identical objects are counted, a different one is a conflict and is left alone', async (t) => {
  const wal = synthWal(6, 2);
  const archiveDir = tempDir(t, 'wk-arch-cf-store-');
  const archive = new FsRemoteStorage(archiveDir);
  // Another safekeeper archived segment 1 already; segment 3 holds something else.
  const same = await encodeObject(sourceSegment(wal, 1n), 'zstd');
  await archive.put(objectKey(TENANT, TIMELINE, segName(1n)), same.body, same.metadata);
  const otherBytes = Buffer.from(sourceSegment(wal, 3n));
  otherBytes[5000] ^= 0xff;
  const other = await encodeObject(otherBytes, 'identity');
  await archive.put(objectKey(TENANT, TIMELINE, segName(3n)), other.body, other.metadata);

  const d = await startDaemon(t, {
    dataDir: tempDir(t, 'wk-arch-cf-'),
    noSync: true,
    args: ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0'],
  });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.startLsn);
  const s = await waitStatus(d, 'the conflict reported', (s) => (s.archive?.conflicts.length ?? 0) > 0 && (s.archive?.segments_uploaded ?? 0) >= 4);
  t.same(s.archive?.conflicts, [segName(3n)]);
  t.equal(s.archive?.segments_already_present, 1, 'segment 1 counted as archived');
  t.equal(s.backup_lsn, lsnText(3n * MiB), 'backup_lsn stops before the conflicting segment');
  t.same(await archivedFile(archive, segName(3n)), otherBytes, 'the conflicting object is not overwritten');
  for (const segno of [4n, 5n, 6n]) t.same(await archivedFile(archive, segName(segno)), sourceSegment(wal, segno), `segment ${segno} after it archived`);
  const m = await metrics(d);
  t.equal(metricValue(m, 'walkeeper_archive_conflicts_total'), 1);
  t.equal(metricValue(m, 'walkeeper_archive_segments_already_present_total'), 1);
  // Removal (keep-size 0) goes up to backup_lsn and keeps the conflicting segment's local copy.
  await waitStatus(d, 'segments 1 and 2 removed', (s) => s.segments_removed === 2);
  t.ok(existsSync(join(timelineDir(d), segName(3n))), 'the local copy of the conflicting segment stays');
  t.ok(d.logs.some((l) => l.msg === 'archived object differs from the local file: not overwritten' && l.file === segName(3n)), 'logged');
  p.client.close();
});

t.test('the verify pass uploads a deleted object again; history files are archived', async (t) => {
  const wal = synthWal(4, 3);
  const archiveDir = tempDir(t, 'wk-arch-vf-store-');
  const archive = new FsRemoteStorage(archiveDir);
  const d = await startDaemon(t, {
    dataDir: tempDir(t, 'wk-arch-vf-'),
    noSync: true,
    args: ['--remote-storage', `file://${archiveDir}`, '--archive-verify-interval', '1s', '--wal-keep-size', '64MB'],
  });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.startLsn);
  await waitStatus(d, 'all archived', (s) => s.backup_lsn === lsnText(5n * MiB));
  const history = '1\t0/1000000\tno recovery target specified\n';
  writeFileSync(join(timelineDir(d), '00000002.history'), history);
  await until('the history file archived', async () => (await archivedFile(archive, '00000002.history'))?.toString() === history, 30_000);

  await archive.delete(objectKey(TENANT, TIMELINE, segName(2n)));
  t.equal(await archivedFile(archive, segName(2n)), null, 'deleted from the archive');
  await until('segment 2 back in the archive', async () => (await archivedFile(archive, segName(2n))) !== null, 30_000);
  t.same(await archivedFile(archive, segName(2n)), sourceSegment(wal, 2n), 'byte-identical');
  p.client.close();
});
