// A reader starting at a position whose segment was removed locally is
// served from the archive, byte-identical, then from the local files;
// without an archive it gets PostgreSQL's "has already been removed".
import t from 'tap';
import { startDaemon, tempDir } from '../daemon/helpers.js';
import { connectPusher, heartbeat, lsnText, MiB, pushRange, stream, synthWal, waitStatus } from './daemon-helpers.js';

t.test('a reader from a removed position is served from the archive, byte-identical', async (t) => {
  const wal = synthWal(6, 8);
  const archiveDir = tempDir(t, 'wk-rd-store-');
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rd-'), noSync: true, args: ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, restart: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.endLsn);
  const s = await waitStatus(d, 'segments 1..6 removed', (s) => s.segments_removed === 6);
  t.equal(s.local_start_lsn, lsnText(7n * MiB));
  // From the middle of segment 2 (archive only) through the local segment 7.
  const from = 2n * MiB + 8192n * 3n + 40n;
  const got = await stream(d, from, wal.endLsn);
  const want = wal.bytes.subarray(Number(from - wal.startLsn), Number(wal.endLsn - wal.startLsn));
  t.equal(got.length, want.length);
  t.ok(got.equals(want), 'archived and local WAL streamed byte-identical to the source');
  p.client.close();
});

t.test('without an archive a removed position gets PostgreSQL\'s error', async (t) => {
  const wal = synthWal(4, 9);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rd-none-'), noSync: true, args: ['--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, restart: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.endLsn);
  await waitStatus(d, 'segments removed', (s) => s.segments_removed === 4);
  const err = (await stream(d, 2n * MiB, 3n * MiB).then(
    () => null,
    (e: Error & { fields?: Record<string, string> }) => e,
  )) as (Error & { fields?: Record<string, string> }) | null;
  t.ok(err, 'refused');
  t.match(err?.message, /requested WAL segment 000000010000000000000002 has already been removed/);
  t.equal(err?.fields?.C, '58P01', 'SQLSTATE undefined_file, as PostgreSQL');
  p.client.close();
});
