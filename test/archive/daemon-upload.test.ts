// The daemon archives committed whole segments, in order with several in
// flight, to a file:/// archive; backup_lsn follows the contiguous prefix,
// is persisted in a format-3 control file and survives a restart; a
// format-2 control file still loads (backup_lsn 0, raised to the local
// start, archived segments found already present). Status and metrics show
// it all.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { crc32cTs } from '../../src/hot/crc32c.js';
import { decodeControlFileContents } from '../../src/protocol/control-file.js';
import { startDaemon, tempDir } from '../daemon/helpers.js';
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
  status,
  synthWal,
  timelineDir,
  waitStatus,
} from './daemon-helpers.js';

t.test('committed whole segments are archived in order; backup_lsn persisted across restarts', async (t) => {
  const wal = synthWal(7); // segments 1..7 whole, 8 partly
  const data = tempDir(t, 'wk-arch-up-');
  const archiveDir = tempDir(t, 'wk-arch-store-');
  const archive = new FsRemoteStorage(archiveDir);
  const args = ['--remote-storage', `file://${archiveDir}`, '--archive-uploads', '3', '--wal-keep-size', '64MB'];
  let d = await startDaemon(t, { dataDir: data, noSync: true, args });

  // Everything pushed, but commit_lsn only in segment 4: segments 1..3 may be archived, 4.. not.
  const p = await connectPusher(d, wal);
  const commit = 4n * MiB + 100n;
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, commit });
  let s = await waitStatus(d, 'segments 1..3 archived', (s) => s.backup_lsn === lsnText(4n * MiB));
  t.equal(s.archive?.location, `file://${archiveDir}`);
  t.equal(s.archive?.segments_uploaded, 3);
  t.equal(s.archive?.lag_bytes, Number(commit - 4n * MiB));
  for (let segno = 1n; segno <= 3n; segno++) t.same(await archivedFile(archive, segName(segno)), sourceSegment(wal, segno), `segment ${segno} archived byte-identical`);
  t.equal(await archivedFile(archive, segName(4n)), null, 'segment 4 is complete here but above commit_lsn: not archived');

  // commit_lsn moves to the end: segments 4..7 follow; 8 is not whole.
  await heartbeat(p, wal.endLsn, wal.startLsn);
  s = await waitStatus(d, 'segments 4..7 archived', (s) => s.backup_lsn === lsnText(8n * MiB));
  t.equal(s.archive?.segments_uploaded, 7);
  t.equal(s.archive?.upload_errors, 0);
  t.same(s.archive?.conflicts, []);
  const keys = await archive.list('');
  t.same(
    keys.map((k) => k.split('/').pop()),
    [1n, 2n, 3n, 4n, 5n, 6n, 7n].map(segName),
    'exactly the whole committed segments, no .partial',
  );
  const m = await metrics(d);
  t.equal(metricValue(m, 'walkeeper_backup_lsn'), Number(8n * MiB));
  t.equal(metricValue(m, 'walkeeper_archive_segments_uploaded_total'), 7);
  t.equal(metricValue(m, 'walkeeper_archive_lag_bytes'), Number(wal.endLsn - 8n * MiB));
  t.equal(metricValue(m, 'walkeeper_local_start_lsn'), Number(MiB));
  t.ok((metricValue(m, 'walkeeper_timeline_disk_usage_bytes') ?? 0) >= 8 * (1 << 20), 'disk usage counts the segment files');
  t.equal(metricValue(m, 'walkeeper_wal_segments_removed_total'), 0, '--wal-keep-size 64MB keeps them all');
  p.client.close();
  await d.stop();

  const control = join(timelineDir(d), 'safekeeper.control');
  const stored = decodeControlFileContents(readFileSync(control), control);
  t.equal(stored.format, 3, 'control file written as format 3');
  t.equal(stored.backupLsn, 8n * MiB, 'backup_lsn persisted at a clean stop');

  d = await startDaemon(t, { dataDir: data, noSync: true, args });
  s = await status(d);
  t.equal(s.backup_lsn, lsnText(8n * MiB), 'backup_lsn read back after the restart');
  t.equal(s.archive?.segments_uploaded, 0, 'nothing uploaded again');
  await d.stop();

  // A format-2 control file (no backup_lsn) still loads: the archive is checked from the local start again.
  const body = Buffer.from(readFileSync(control).subarray(0, 128));
  body.writeUInt32LE(2, 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32cTs(body));
  writeFileSync(control, Buffer.concat([body, crc]));
  d = await startDaemon(t, { dataDir: data, noSync: true, args });
  // commit_lsn is persisted lazily: a proposer tells it again.
  const again = await connectPusher(d, wal);
  await heartbeat(again, wal.endLsn, wal.startLsn);
  s = await waitStatus(d, 'the archive re-checked from a format-2 control file', (s) => s.backup_lsn === lsnText(8n * MiB));
  t.equal(s.archive?.segments_already_present, 7, 'identical archived segments are counted, not uploaded again');
  t.equal(s.archive?.segments_uploaded, 0);
  t.equal(s.flush_lsn, lsnText(wal.endLsn), 'the WAL itself is untouched');
  again.client.close();
  await d.stop();
  t.equal(decodeControlFileContents(readFileSync(control), control).format, 3, 'upgraded to format 3 on write');
  t.same(readdirSync(archiveDir).length > 0, true);
});
