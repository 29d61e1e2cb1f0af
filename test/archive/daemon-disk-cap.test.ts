// An unreachable archive (s3rver killed): the timeline keeps accepting WAL
// up to --max-timeline-disk-usage, then refuses appends with 53100 while
// another timeline on the same daemon keeps accepting. When the archive is
// back the backlog uploads, space is reclaimed and appends are accepted
// again, without a restart; nothing acknowledged is lost.
import t from 'tap';
import { S3RemoteStorage } from '../../src/archive/s3-storage.js';
import { S3_TEST_CREDENTIALS, S3TestServer } from '../../support/s3-server.js';
import { PushError, startDaemon, tempDir, type DaemonProc, type RealWal } from '../daemon/helpers.js';
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
  status,
  synthWal,
  waitStatus,
  type Pusher,
} from './daemon-helpers.js';

const OTHER_TIMELINE = '0f'.repeat(16);

/** Push the rest of `wal` like a proposer: from the position the greeting reports; on 53100 reconnect after a pause and go on. */
async function pushThroughRefusals(d: DaemonProc, wal: RealWal): Promise<{ refusals: number; p: Pusher }> {
  let refusals = 0;
  let p = await connectPusher(d, wal);
  let pos = p.acked;
  for (;;) {
    try {
      await pushRange(p, wal, { from: pos, to: wal.endLsn, restart: wal.startLsn });
      return { refusals, p };
    } catch (err) {
      if (!(err instanceof PushError) || err.code !== '53100') throw err;
      refusals++;
      if (refusals > 200) throw err;
      p.client.close();
      await new Promise((r) => setTimeout(r, 100));
      p = await connectPusher(d, wal);
      pos = p.acked;
    }
  }
}

t.test('disk cap with a stalled archive, then recovery when it returns', async (t) => {
  Object.assign(process.env, S3_TEST_CREDENTIALS);
  const s3 = await S3TestServer.start();
  t.teardown(() => s3.close());
  const url = `s3://${s3.bucket}/wal`;
  const d = await startDaemon(t, {
    dataDir: tempDir(t, 'wk-cap-'),
    noSync: true,
    args: ['--remote-storage', url, '--remote-storage-endpoint', s3.endpoint, '--max-timeline-disk-usage', '4MB', '--wal-keep-size', '0'],
  });
  await s3.kill();

  const wal = synthWal(7, 10);
  const p = await connectPusher(d, wal);
  let refused: PushError | null = null;
  try {
    await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn });
  } catch (err) {
    if (!(err instanceof PushError)) throw err;
    refused = err;
  }
  t.ok(refused, 'an append over the cap is refused');
  t.equal(refused?.code, '53100', 'SQLSTATE disk_full');
  t.match(refused?.fields.M, /^timeline disk usage/);
  t.equal(p.acked, 5n * MiB, 'accepted up to the cap: four 1 MiB segments');
  p.client.close();

  // Another timeline on the same daemon keeps working.
  const walB = synthWal(2, 11);
  const pb = await connectPusher(d, walB, OTHER_TIMELINE);
  await pushRange(pb, walB, { from: walB.startLsn, to: walB.endLsn });
  t.equal(pb.acked, walB.endLsn, 'the other timeline accepted all its WAL');
  pb.client.close();

  const stalled = await waitStatus(d, 'upload errors reported', (s) => (s.archive?.upload_errors ?? 0) > 0);
  t.ok(stalled.archive?.last_error, 'the last error is shown');
  t.equal(stalled.segments_removed, 0, 'nothing removed while nothing is archived');
  t.equal(stalled.backup_lsn, '0/0', 'backup_lsn 0/0: nothing archived yet');
  const m = await metrics(d);
  t.ok((metricValue(m, 'walkeeper_archive_upload_errors_total') ?? 0) > 0, 'upload errors counted in the metrics');
  t.ok((metricValue(m, 'walkeeper_archive_lag_bytes') ?? 0) > 0, 'archive lag in the metrics');
  t.ok(stalled.disk_usage_bytes >= 4 * (1 << 20), 'disk usage shown');

  // The archive returns: the backlog uploads, space is reclaimed, appends go on.
  await s3.resume();
  await waitStatus(d, 'the backlog archived', (s) => (s.archive?.segments_uploaded ?? 0) >= 3 && s.segments_removed >= 3);
  const { refusals, p: p2 } = await pushThroughRefusals(d, wal);
  t.equal(p2.acked, wal.endLsn, `all WAL accepted (${refusals} refusals on the way while uploads caught up)`);
  await heartbeat(p2, wal.endLsn, wal.startLsn);
  const s = await waitStatus(d, 'everything archived', (s) => s.backup_lsn === lsnText(8n * MiB));
  t.equal(s.flush_lsn, lsnText(wal.endLsn));

  // Nothing acknowledged was lost: every whole segment is in the archive, byte-identical.
  const storage = new S3RemoteStorage({ bucket: s3.bucket, prefix: 'wal', endpoint: s3.endpoint });
  t.teardown(() => storage.close());
  for (let segno = 1n; segno <= 7n; segno++) t.same(await archivedFile(storage, segName(segno)), sourceSegment(wal, segno), `segment ${segno} archived`);
  await until('the status still answers', async () => (await status(d)).flush_lsn === lsnText(wal.endLsn), 5000);
  p2.client.close();
});

t.test('at the cap, WAL kept only for readers yields (a cap below --wal-keep-size does not stop appends for good)', async (t) => {
  const d = await startDaemon(t, {
    dataDir: tempDir(t, 'wk-cap-keep-'),
    noSync: true,
    args: ['--max-timeline-disk-usage', '4MB', '--wal-keep-size', '64MB'],
  });
  const wal = synthWal(7, 13);
  // No archive; restart_lsn at the end: only --wal-keep-size holds WAL back.
  let p = await connectPusher(d, wal);
  let refusals = 0;
  while (p.acked < wal.endLsn) {
    try {
      // A new timeline greets with flush_lsn 0: its WAL starts at the WAL's start.
      await pushRange(p, wal, { from: p.acked === 0n ? wal.startLsn : p.acked, to: wal.endLsn, restart: wal.endLsn });
    } catch (err) {
      if (!(err instanceof PushError) || err.code !== '53100' || ++refusals > 200) throw err;
      p.client.close();
      await new Promise((r) => setTimeout(r, 100));
      p = await connectPusher(d, wal);
    }
  }
  t.equal(p.acked, wal.endLsn, `all WAL accepted (${refusals} refusals on the way)`);
  const s = await waitStatus(d, 'old segments removed', (s) => s.segments_removed > 0);
  t.ok(s.disk_usage_bytes <= 6 * (1 << 20), `disk usage ${s.disk_usage_bytes} stays near the cap`);
  t.ok(d.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('at the disk cap')), 'logged');
  p.client.close();
});
