// An archive outage, end to end: s3rver is killed while PostgreSQL commits
// through `walkeeper propose` and three archiving safekeepers. One of them
// has a small --max-timeline-disk-usage: it keeps accepting WAL until its
// timeline reaches the cap, then refuses appends (53100, "timeline disk
// usage ...") while commits go on with the other two. When the server
// returns, the backlog is uploaded, space is reclaimed without a restart,
// and the capped safekeeper accepts appends again and catches up.
import t from 'tap';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import { waitFor } from '../helpers/support.js';
import { makeSynchronous, readWal, reportedFlush } from '../proposer-e2e/harness.js';
import { compareArchive, pgbenchUntil, primaryFlush, SEG, segOf, segStart, startLifecycle, startProposer, startS3Archive, waitBackup, type ArchivingSafekeeper } from './harness.js';

const seed = Number(process.env.WK_ARCHIVE_SEED ?? 20261207);
const KEEP_SEGMENTS = 4;
const CAP_MB = 10;

/** The capped safekeeper's log lines for a push session it ended with the disk cap refusal. */
function refusals(sk: ArchivingSafekeeper): Array<Record<string, unknown>> {
  return sk.lines('WAL push: session ended with an error').filter((l) => l.sqlstate === '53100' && String(l.error).startsWith('timeline disk usage'));
}

t.test('archive outage: the capped safekeeper refuses appends at its cap, commits go on, and everything recovers when the archive returns', async (t) => {
  // The sequence is fixed; the seed is printed for the record and repeats the pgbench sizes.
  t.comment(`seed ${seed} (WK_ARCHIVE_SEED to repeat)`);
  const tx = 60 + (seed % 5) * 10;
  const archive = await startS3Archive(t);
  const { primary, safekeepers: sks, proposer } = await startLifecycle(t, {
    archive,
    skArgs: (i) => ['--wal-keep-size', `${KEEP_SEGMENTS}MB`, '--archive-verify-interval', '1s', ...(i === 0 ? ['--max-timeline-disk-usage', `${CAP_MB}MB`] : [])],
  });
  const capped: ArchivingSafekeeper = sks[0];
  await primary.pgbench(['-i', '-s', '1', '-q']);
  await primary.sql('create table filler (id int, pad text)');
  const startLsn = await startProposer(proposer);
  await makeSynchronous(primary);

  // Some archived WAL first, so the outage interrupts a working archive.
  await pgbenchUntil(primary, startLsn + BigInt(4 * SEG), tx, async () => {});
  const before = await waitFor('the commit position', () => reportedFlush(primary), (f) => f >= startLsn + BigInt(4 * SEG), 30_000);
  await waitBackup(sks, segStart(segOf(before)));
  const usageBefore = (await capped.status()).disk_usage_bytes;
  t.ok(usageBefore < CAP_MB * (1 << 20), `${capped.address}: ${usageBefore} bytes on disk before the outage (cap ${CAP_MB} MiB)`);

  await archive.server!.kill();
  const flushAtKill = await capped.flushLsn();
  t.comment(`archive down at ${formatLsn(flushAtKill)}`);

  let refusedAt = 0n;
  await t.test('without the archive the capped safekeeper fills up to its cap, then refuses appends with 53100', async (t) => {
    // Rounds of load until the capped safekeeper's refusal shows in its log or the proposer's.
    let rounds = 0;
    while (refusals(capped).length === 0) {
      if (++rounds > 60) break;
      const at = await primaryFlush(primary);
      await pgbenchUntil(primary, at + BigInt(SEG), tx, async () => {});
    }
    const lines = refusals(capped);
    t.ok(lines.length > 0, `after ${rounds} rounds it ended a push session with 53100: ${JSON.stringify(lines[0] ?? null)}`);
    const seen = proposer.logs.filter((l) => l.safekeeper === capped.address && String(l.err).includes('timeline disk usage'));
    t.ok(seen.length > 0, `the proposer got the ErrorResponse: ${JSON.stringify(seen[0] ?? null)}`);
    refusedAt = await capped.flushLsn();
    const st = await capped.status();
    t.ok(refusedAt > flushAtKill + BigInt(2 * SEG), `WAL kept flowing into it during the outage: ${formatLsn(flushAtKill)} -> ${formatLsn(refusedAt)}`);
    const files = capped.localSegments();
    // The cap is on WAL: segment files are whole (1 MiB here), the control file and one 128 KiB request are the slack.
    t.ok(
      st.disk_usage_bytes <= CAP_MB * (1 << 20) + (128 << 10),
      `disk_usage_bytes ${st.disk_usage_bytes} stays within the cap of ${CAP_MB} MiB (local_start_lsn ${st.local_start_lsn}, backup_lsn ${st.backup_lsn}, ${files.length} segment files ${formatLsn(segStart(files[0]))}..${formatLsn(segStart(files[files.length - 1]))})`,
    );
    t.equal(parseLsn(st.local_start_lsn), segStart(files[0]), 'local_start_lsn is the start of the first segment file on disk');
    t.ok(st.archive!.upload_errors > 0 && st.archive!.last_error !== null, `upload errors are counted (${st.archive!.upload_errors}) and the last is shown: ${st.archive!.last_error}`);
    t.ok((await capped.metric('walkeeper_archive_upload_errors_total')) > 0, 'walkeeper_archive_upload_errors_total > 0');
    t.ok(st.archive!.lag_bytes > 0 && (await capped.metric('walkeeper_archive_lag_bytes')) > 0, `archive lag ${st.archive!.lag_bytes} bytes, in the metric too`);
  });

  await t.test('commits continue on the other two while it refuses', async (t) => {
    const from = await reportedFlush(primary);
    await pgbenchUntil(primary, from + BigInt(3 * SEG), tx, async () => {});
    const now = await waitFor('the commit position to move on', () => reportedFlush(primary), (f) => f >= from + BigInt(3 * SEG), 30_000);
    const held = await capped.flushLsn();
    t.ok(now >= from + BigInt(3 * SEG), `commit position ${formatLsn(from)} -> ${formatLsn(now)} without the archive`);
    t.ok(held < now && held <= refusedAt + BigInt(SEG), `the capped safekeeper stays behind at ${formatLsn(held)}`);
    for (const sk of sks.slice(1)) t.ok((await sk.flushLsn()) >= now, `${sk.address} holds the WAL`);
  });

  await t.test('the archive returns: backlog uploaded, space reclaimed, the capped safekeeper accepts appends and catches up', async (t) => {
    const usageFull = (await capped.status()).disk_usage_bytes;
    await archive.server!.resume();
    const commit = await reportedFlush(primary);
    await waitBackup(sks.slice(1), segStart(segOf(commit)), 60_000);
    // The capped one catches up from a peer (served from local files or, where the peer already removed them, from the archive).
    await waitFor(`${capped.address} to catch up to ${formatLsn(commit)}`, () => capped.flushLsn(), (f) => f >= commit, 60_000, 250);
    await waitBackup([capped], segStart(segOf(commit)), 60_000);
    for (const sk of sks) {
      const local = await waitFor(`${sk.address}: local segments back within the retention`, () => sk.localSegments(), (l) => l.length <= KEEP_SEGMENTS + 2, 30_000, 250);
      t.ok(local.length <= KEEP_SEGMENTS + 2, `${sk.address}: ${local.length} segment files on disk`);
    }
    const usageAfter = (await capped.status()).disk_usage_bytes;
    t.ok(usageAfter < usageFull, `${capped.address}: disk usage ${usageFull} -> ${usageAfter} bytes`);

    // It takes part again: more load, and it follows the commit position.
    const from = await primaryFlush(primary);
    await pgbenchUntil(primary, from + BigInt(2 * SEG), tx, async () => {});
    const end = await primaryFlush(primary);
    const commit2 = await waitFor('the commit position', () => reportedFlush(primary), (f) => f >= end, 30_000);
    await waitFor(`${capped.address} to follow to ${formatLsn(commit2)}`, () => capped.flushLsn(), (f) => f >= commit2, 30_000, 250);
    const st = await capped.status();
    t.equal(parseLsn(st.flush_lsn) >= commit2, true, `${capped.address} accepts appends again (flush ${st.flush_lsn})`);
    t.ok(st.disk_usage_bytes < CAP_MB * (1 << 20), `and is below its cap (${st.disk_usage_bytes} bytes)`);

    await waitBackup(sks, segStart(segOf(commit2)), 60_000);
    t.same(await compareArchive(archive.storage, primary, segOf(startLsn), segOf(commit2)), [], 'the archive holds every committed segment, byte-identical to the primary');
    for (const sk of sks) {
      const s = await sk.status();
      const start = parseLsn(s.local_start_lsn);
      const n = Number(commit2 - start);
      t.ok(n > 0 && sk.wal(start, n, SEG).equals(readWal(primary.walDir, start, n, SEG)), `${sk.address}: local WAL ${s.local_start_lsn}..${formatLsn(commit2)} identical to the primary's`);
    }
  });

  await proposer.stop();
});
