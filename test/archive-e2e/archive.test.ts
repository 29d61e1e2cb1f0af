// The WAL lifecycle with S3, end to end: a PostgreSQL 15 primary commits
// through `walkeeper propose` and three safekeepers that archive to a real
// S3-protocol server (s3rver) and keep only a few segments locally.
//
//  * every segment wholly below the final commit position is in the bucket,
//    decodes, verifies and is byte-identical to the primary's pg_wal file;
//  * each safekeeper's disk stays bounded by the retention during and after
//    the load;
//  * a hot standby from a base backup taken before the load, started once
//    its starting WAL is gone from the safekeepers' disks, streams from a
//    safekeeper that serves it from the archive, and catches up;
//  * point-in-time recovery from the same archive through
//    `walkeeper restore-wal` to a transaction recorded during the load
//    gives exactly the rows committed up to it;
//  * an object deleted from the bucket is uploaded again by the verify
//    pass; an object replaced with other bytes is reported as a conflict
//    (status and metric) and left as it is.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import { encodeObject, META_SHA256 } from '../../src/archive/object-format.js';
import { letPgReach } from '../../support/pg-proc.js';
import { BIN } from '../daemon/helpers.js';
import { sleep, waitFor, xorshift32 } from '../helpers/support.js';
import { makeSynchronous, reportedFlush } from '../proposer-e2e/harness.js';
import {
  archivedSegment,
  archivedSegments,
  baseBackup,
  compareArchive,
  pgbenchUntil,
  primaryFlush,
  SEG,
  segmentKey,
  segOf,
  segStart,
  startFromBackup,
  startLifecycle,
  startProposer,
  startS3Archive,
  TENANT,
  TIMELINE,
  waitBackup,
} from './harness.js';

const seed = Number(process.env.WK_ARCHIVE_SEED ?? 20261207);
const KEEP_SEGMENTS = 4;
const LOAD_SEGMENTS = 24;

t.test('WAL archived to S3 by three safekeepers: complete, byte-identical, bounded on disk, served to a standby and to recovery', async (t) => {
  t.comment(`seed ${seed} (WK_ARCHIVE_SEED to repeat)`);
  const rnd = xorshift32(seed);
  const archive = await startS3Archive(t);
  const { primary, safekeepers: sks, proposer } = await startLifecycle(t, {
    archive,
    skArgs: () => ['--wal-keep-size', `${KEEP_SEGMENTS}MB`, '--archive-verify-interval', '1s'],
  });
  await primary.pgbench(['-i', '-s', '1', '-q']);
  await primary.sql('create table filler (id int, pad text)');
  await primary.sql('create table marks (n int primary key, history bigint, filler bigint)');

  const startLsn = await startProposer(proposer);
  await makeSynchronous(primary);
  // Both backups hold no WAL: everything they replay comes from the safekeepers or the archive.
  const standbyDir = await baseBackup(t, primary, 'wk-arch-standby-');
  const pitrDir = await baseBackup(t, primary, 'wk-arch-pitr-');

  // ---- the load, with one mark per round (pgbench is idle then: the mark's snapshot is the whole state)
  const target = startLsn + BigInt(LOAD_SEGMENTS * SEG);
  const marks: Array<{ n: number; xid: string; history: number; filler: number }> = [];
  let maxLocal = 0;
  const overBound: string[] = [];
  const sample = async (): Promise<void> => {
    for (const sk of sks) {
      const st = await sk.status();
      const local = sk.localSegments().length;
      maxLocal = Math.max(maxLocal, local);
      // Retention, the segment being written, one more at the horizon's edge, what the archive has not taken yet,
      // and two for removal, which runs in the background behind the horizon.
      const lagSegs = Math.ceil((st.archive?.lag_bytes ?? 0) / SEG);
      if (local > KEEP_SEGMENTS + 4 + lagSegs) overBound.push(`${sk.address}: ${local} local segments with an archive lag of ${lagSegs}`);
    }
    const n = marks.length + 1;
    const out = await primary.sql(
      `insert into marks select ${n}, (select count(*) from pgbench_history), (select count(*) from filler) returning txid_current(), history, filler`,
    );
    const [xid, history, filler] = out.split('|');
    marks.push({ n, xid, history: Number(history), filler: Number(filler) });
  };
  const rounds = await pgbenchUntil(primary, target, 100, sample);
  t.comment(`${rounds} pgbench rounds, WAL ${formatLsn(startLsn)}..${formatLsn(await primaryFlush(primary))}; at most ${maxLocal} segments on a safekeeper's disk`);
  t.same(overBound, [], `local disk stayed within ${KEEP_SEGMENTS} kept segments + the archive lag (+ 4) during the load`);
  t.ok(maxLocal <= LOAD_SEGMENTS / 2, `WAL was removed during the load, not only after it (at most ${maxLocal} local segments while ${LOAD_SEGMENTS} were pushed)`);

  const final = await primaryFlush(primary);
  const commit = await waitFor('the commit position to reach the primary flush', () => reportedFlush(primary), (f) => f >= final, 30_000);
  const firstSeg = segOf(startLsn);
  const endSeg = segOf(commit); // segments [firstSeg, endSeg) are wholly below the commit position
  t.ok(endSeg - firstSeg >= 20n, `${endSeg - firstSeg} whole segments committed`);

  await t.test('every committed segment is in the bucket, byte-identical to the primary', async (t) => {
    await waitBackup(sks, segStart(endSeg));
    const listed = await archivedSegments(archive.storage);
    const missing: string[] = [];
    for (let s = firstSeg; s < endSeg; s++) if (!listed.includes(s)) missing.push(formatLsn(segStart(s)));
    t.same(missing, [], `segments ${firstSeg}..${endSeg - 1n} listed under ${TENANT}/${TIMELINE}/`);
    t.same(await compareArchive(archive.storage, primary, firstSeg, endSeg), [], 'each decodes, verifies and equals the primary pg_wal file');
    for (const sk of sks) {
      const st = await sk.status();
      t.ok(parseLsn(st.backup_lsn) >= segStart(endSeg) && parseLsn(st.backup_lsn) <= parseLsn(st.commit_lsn), `${sk.address}: backup_lsn ${st.backup_lsn} within [${formatLsn(segStart(endSeg))}, commit_lsn ${st.commit_lsn}]`);
      t.ok(st.archive !== null && st.archive.location.includes(archive.url.slice('s3://'.length).split('/')[0]), `${sk.address}: archive.location ${st.archive?.location}`);
      const a = st.archive!;
      t.ok(a.segments_uploaded + a.segments_already_present >= Number(endSeg - firstSeg), `${sk.address}: ${a.segments_uploaded} uploaded + ${a.segments_already_present} already present`);
      t.equal(a.upload_errors, 0, `${sk.address}: no upload errors`);
      t.same(a.conflicts, [], `${sk.address}: no conflicts`);
      t.equal(await sk.metric('walkeeper_backup_lsn'), Number(parseLsn(st.backup_lsn)), `${sk.address}: walkeeper_backup_lsn metric`);
    }
    const uploaded = (await Promise.all(sks.map((s) => s.status()))).reduce((n, s) => n + s.archive!.segments_uploaded, 0);
    t.ok(uploaded >= Number(endSeg - firstSeg), `${uploaded} uploads in all for ${endSeg - firstSeg} segments (each one by someone)`);
  });

  await t.test('local disk is back within the retention once the archive holds the WAL', async (t) => {
    for (const sk of sks) {
      const local = await waitFor(`${sk.address}: local segments within the retention`, () => sk.localSegments(), (l) => l.length <= KEEP_SEGMENTS + 2, 30_000, 200);
      const st = await sk.status();
      t.ok(local.length <= KEEP_SEGMENTS + 2, `${sk.address}: ${local.length} segment files on disk (retention ${KEEP_SEGMENTS})`);
      t.equal(parseLsn(st.local_start_lsn), segStart(local[0]), `${sk.address}: local_start_lsn ${st.local_start_lsn} is the first local segment's start`);
      t.ok(st.segments_removed >= Number(endSeg - firstSeg) - KEEP_SEGMENTS - 2, `${sk.address}: ${st.segments_removed} segments removed`);
      t.equal(st.archive!.segments_removed, st.segments_removed, `${sk.address}: archive.segments_removed agrees`);
      t.equal(await sk.metric('walkeeper_wal_segments_removed_total'), st.segments_removed, `${sk.address}: walkeeper_wal_segments_removed_total`);
      t.equal(await sk.metric('walkeeper_local_start_lsn'), Number(parseLsn(st.local_start_lsn)), `${sk.address}: walkeeper_local_start_lsn`);
      t.ok(st.disk_usage_bytes <= (KEEP_SEGMENTS + 3) * SEG, `${sk.address}: disk_usage_bytes ${st.disk_usage_bytes}`);
    }
  });

  await t.test('a hot standby from the old base backup streams from the archive through a safekeeper and catches up', async (t) => {
    const sk = sks[Math.floor(rnd() * sks.length)];
    const label = readFileSync(`${standbyDir}/backup_label`, 'utf8');
    const redo = parseLsn(/START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/.exec(label)![1]);
    const st = await sk.status();
    t.ok(parseLsn(st.local_start_lsn) > redo, `${sk.address} no longer has the backup's start ${formatLsn(redo)} (local start ${st.local_start_lsn})`);
    const standby = await startFromBackup(t, standbyDir, 'standby.signal', {
      primary_conninfo: `host=127.0.0.1 port=${sk.pgPort} user=postgres application_name=wk_arch_standby options='-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}'`,
      hot_standby: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
    });
    const replayed = await waitFor('the standby to replay to the commit position', () => standby.sql('select pg_last_wal_replay_lsn()').then(parseLsn), (l) => l >= final, 60_000, 250);
    t.ok(replayed >= final, `replayed to ${formatLsn(replayed)} (commit position ${formatLsn(commit)})`);
    t.match(await standby.sql('select status, sender_port from pg_stat_wal_receiver'), `streaming|${sk.pgPort}`, 'it streams from the safekeeper');
    const q = 'select (select count(*) from pgbench_history), (select sum(abalance) from pgbench_accounts), (select count(*) from filler), (select count(*) from marks)';
    t.equal(await standby.sql(q), await primary.sql(q), 'the rows match the primary');
    await standby.stop();
  });

  await t.test('point-in-time recovery through restore-wal stops at a transaction recorded during the load', async (t) => {
    // A mark from the middle of the load, chosen by the seed; its row recorded what was committed then.
    const mark = marks[Math.floor(marks.length / 4) + Math.floor(rnd() * Math.floor(marks.length / 2))];
    t.comment(`recovery_target_xid ${mark.xid} (mark ${mark.n} of ${marks.length})`);
    const opened = letPgReach([process.execPath, BIN]);
    if (opened.length > 0) t.comment(`let the PostgreSQL user traverse ${opened.join(', ')} (restore_command runs as that user)`);
    const restore = [
      process.execPath,
      BIN,
      'restore-wal',
      '%f',
      '%p',
      '--remote-storage',
      archive.url,
      '--remote-storage-endpoint',
      archive.endpoint!,
      '--tenant',
      TENANT,
      '--timeline',
      TIMELINE,
    ].join(' ');
    const pitr = await startFromBackup(t, pitrDir, 'recovery.signal', {
      restore_command: restore,
      recovery_target_xid: mark.xid,
      recovery_target_action: 'promote',
    });
    await waitFor('recovery to end and promote', () => pitr.sql('select pg_is_in_recovery()'), (v) => v === 'f', 60_000, 250);
    t.equal(await pitr.sql('select max(n), count(*) from marks'), `${mark.n}|${mark.n}`, `marks 1..${mark.n}: exactly the ones committed up to the target`);
    t.equal(Number(await pitr.sql('select count(*) from pgbench_history')), mark.history, `pgbench_history as at the target (${mark.history} rows)`);
    t.equal(Number(await pitr.sql('select count(*) from filler')), mark.filler, `filler as at the target (${mark.filler} rows)`);
    await pitr.stop();
  });

  await t.test('the verify pass uploads a deleted object again and reports a replaced one as a conflict', async (t) => {
    // Candidates: archived segments still on every safekeeper's disk (only those are re-checked).
    const onAll = sks.map((s) => new Set(s.localSegments()));
    const candidates: bigint[] = [];
    for (const s of sks[0].localSegments()) if (s < endSeg && onAll.every((set) => set.has(s))) candidates.push(s);
    t.ok(candidates.length >= 2, `${candidates.length} archived segments still local on all three`);
    const [deleted, replaced] = [candidates[0], candidates[1]];
    const deletedName = segmentKey(deleted).split('/').pop()!;
    const replacedName = segmentKey(replaced).split('/').pop()!;

    await archive.storage.delete(segmentKey(deleted));
    const other = Buffer.alloc(SEG, 0x5a);
    const forged = await encodeObject(other, 'zstd');
    await archive.storage.put(segmentKey(replaced), forged.body, forged.metadata);

    const back = await waitFor(`${deletedName} to be uploaded again`, () => archivedSegment(archive.storage, deleted), (f) => f !== null, 30_000, 250);
    t.same(await compareArchive(archive.storage, primary, deleted, deleted + 1n), [], `${deletedName} is back, byte-identical to the primary's (${back!.length} bytes)`);

    for (const sk of sks) {
      const st = await waitFor(`${sk.address} to report ${replacedName} as a conflict`, () => sk.status(), (s) => s.archive?.conflicts.includes(replacedName) === true, 30_000, 250);
      t.ok(st.archive!.conflicts.includes(replacedName), `${sk.address}: archive.conflicts lists ${replacedName}`);
      t.ok((await sk.metric('walkeeper_archive_conflicts_total')) >= 1, `${sk.address}: walkeeper_archive_conflicts_total >= 1`);
    }
    // Several verify intervals later the forged object is still there: a conflict is never overwritten.
    await sleep(3000);
    const head = await archive.storage.head(segmentKey(replaced));
    t.equal(head?.metadata[META_SHA256], forged.metadata[META_SHA256], `${replacedName} was not overwritten`);
  });

  await proposer.stop();
});
