// kill -9 of the daemon while it uploads and removes WAL: after the restart
// backup_lsn and the files agree. backup_lsn is at least the local start
// (segments below it were removed only once archived), every segment below
// backup_lsn is in the archive byte-identical, the local segments from the
// local start are contiguous, and the uploads carry on to the end.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { parseLsn } from '../../src/lsn.js';
import { startDaemon, tempDir } from '../daemon/helpers.js';
import { archivedFile, connectPusher, heartbeat, lsnText, MiB, pushRange, segName, sourceSegment, status, synthWal, timelineDir, waitStatus } from './daemon-helpers.js';

const SEED = 12;

t.test('kill -9 during uploads and removal', async (t) => {
  t.comment(`seed ${SEED}`);
  const wal = synthWal(20, SEED);
  const data = tempDir(t, 'wk-k9-');
  const archiveDir = tempDir(t, 'wk-k9-store-');
  const archive = new FsRemoteStorage(archiveDir);
  const args = ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0', '--archive-uploads', '1'];
  let d = await startDaemon(t, { dataDir: data, args });
  const p = await connectPusher(d, wal);
  // Killed while WAL still arrives: the uploader follows commit_lsn segment by segment, removal right behind it.
  const pushing = pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, restart: wal.endLsn }).then(
    () => 'finished',
    () => 'cut off by the kill',
  );
  const before = await waitStatus(d, 'uploads and removal under way', (s) => s.segments_removed >= 1);
  await d.kill9();
  t.comment(`killed with backup_lsn ${before.backup_lsn}, local start ${before.local_start_lsn}, flush ${before.flush_lsn} (as last seen); push ${await pushing}`);
  p.client.close();

  d = await startDaemon(t, { dataDir: data, args });
  const s = await status(d);
  const backup = parseLsn(s.backup_lsn);
  const localStart = parseLsn(s.local_start_lsn);
  t.ok(backup >= localStart, `backup_lsn ${s.backup_lsn} is at least the local start ${s.local_start_lsn}`);
  for (let segno = 1n; segno * MiB < backup; segno++) {
    t.same(await archivedFile(archive, segName(segno)), sourceSegment(wal, segno), `segment ${segno} below backup_lsn is archived`);
  }
  const local = readdirSync(timelineDir(d))
    .filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n))
    .map((n) => BigInt(parseInt(n.slice(16, 24), 16)))
    .sort((a, b) => (a < b ? -1 : 1));
  t.equal(local[0] * MiB, localStart, 'the local start is the oldest segment file');
  t.same(
    local,
    local.map((_, i) => local[0] + BigInt(i)),
    'local segments are contiguous',
  );

  // commit_lsn comes back with the proposer; the uploads and removal go on to the end.
  const p2 = await connectPusher(d, wal);
  await pushRange(p2, wal, { from: p2.acked, to: wal.endLsn, restart: wal.endLsn });
  await heartbeat(p2, wal.endLsn, wal.endLsn);
  const done = await waitStatus(d, 'all whole segments archived and removed', (s) => s.backup_lsn === lsnText(21n * MiB) && s.local_start_lsn === lsnText(21n * MiB));
  t.equal(done.flush_lsn, lsnText(wal.endLsn));
  for (let segno = 1n; segno <= 20n; segno++) t.same(await archivedFile(archive, segName(segno)), sourceSegment(wal, segno), `segment ${segno} archived`);
  p2.client.close();
});
