// kill -9 of archiving safekeepers, end to end: while PostgreSQL commits
// through `walkeeper propose` (pgbench and clients that remember every
// acknowledged commit), safekeepers are killed with SIGKILL right after an
// upload or a removal was seen (alternately; which safekeeper and the delay
// come from the seed) and restarted. Afterwards, on each one: backup_lsn and
// the archive agree (every segment below it is in the bucket and verifies,
// byte-identical to the primary's), its local files are contiguous from
// local_start_lsn with nothing between the archive and them, and the WAL
// up to the commit position is byte-identical to the primary's; every
// acknowledged commit is on the primary.
import t from 'tap';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import { sleep, waitFor, xorshift32 } from '../helpers/support.js';
import { makeSynchronous, readWal, reportedFlush, Workload } from '../proposer-e2e/harness.js';
import { compareArchive, pgbenchUntil, primaryFlush, SEG, segOf, segStart, startLifecycle, startProposer, startS3Archive, waitBackup, type ArchivingSafekeeper } from './harness.js';

const seed = Number(process.env.WK_ARCHIVE_SEED ?? 20261207);
const KEEP_SEGMENTS = 2;
const KILLS = 6;

function contiguous(segs: bigint[]): boolean {
  return segs.length > 0 && segs.every((s, i) => i === 0 || s === segs[i - 1] + 1n);
}

t.test('kill -9 during uploads and removal: backup_lsn, the archive and local files agree; nothing acknowledged is lost', async (t) => {
  t.comment(`seed ${seed} (WK_ARCHIVE_SEED to repeat)`);
  const rnd = xorshift32(seed);
  const archive = await startS3Archive(t);
  const { primary, safekeepers: sks, proposer } = await startLifecycle(t, {
    archive,
    skArgs: () => ['--wal-keep-size', `${KEEP_SEGMENTS}MB`, '--archive-verify-interval', '1s', '--archive-uploads', '2'],
  });
  await primary.pgbench(['-i', '-s', '1', '-q']);
  await primary.sql('create table filler (id int, pad text)');
  const startLsn = await startProposer(proposer);
  await makeSynchronous(primary);
  const work = await Workload.start(primary, 2);
  const firstSeg = segOf(startLsn);

  const caughtUp = async (sk: ArchivingSafekeeper): Promise<void> => {
    const target = await reportedFlush(primary);
    await waitFor(`${sk.address} to catch up to ${formatLsn(target)}`, () => sk.flushLsn(), (f) => f >= target, 60_000, 200);
  };

  await t.test('safekeepers killed right after uploads and removals, and restarted', async (t) => {
    const kinds: string[] = [];
    const problems: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const sk = sks[Math.floor(rnd() * sks.length)];
      const kind = k % 2 === 0 ? 'upload' : 'removal';
      const counter = async (): Promise<number> => {
        const st = await sk.status();
        return kind === 'upload' ? st.archive!.segments_uploaded + st.archive!.segments_already_present : st.segments_removed;
      };
      const before = await counter();
      // Load in the background until the counter moves; kill within a seeded few ms of seeing it.
      let seen = false;
      const load = (async () => {
        while (!seen) await pgbenchUntil(primary, (await primaryFlush(primary)) + BigInt(SEG), 60, async () => {});
      })();
      await waitFor(`${sk.address}: an ${kind}`, counter, (n) => n > before, 90_000, 20).finally(() => (seen = true));
      await sleep(Math.floor(rnd() * 40));
      await sk.kill9();
      kinds.push(`${kind}@${sk.index}`);
      await load;
      const count = work.count;
      await waitFor('commits with one safekeeper down', () => work.count, (n) => n > count, 30_000);
      // What the crash left (nothing runs on this directory now): contiguous segment files, oldest first removed.
      const left = sk.localSegments();
      if (!contiguous(left)) problems.push(`${kind}@${sk.index}: the crash left segment files ${left.join(',')}`);
      await sk.start();
      // What the restarted daemon starts from: its persisted backup_lsn against the archive, a local start among the files left.
      const st = await sk.status();
      const backup = parseLsn(st.backup_lsn);
      const localStart = parseLsn(st.local_start_lsn);
      const bad = await compareArchive(archive.storage, primary, firstSeg, segOf(backup));
      if (bad.length) problems.push(`${kind}@${sk.index}: below backup_lsn ${st.backup_lsn}: ${bad.join('; ')}`);
      if (localStart > backup) problems.push(`${kind}@${sk.index}: local_start_lsn ${st.local_start_lsn} above backup_lsn ${st.backup_lsn}: a gap nobody holds`);
      // Removal may already run again, so the local start may have moved up from the first file left, never below it.
      if (segOf(localStart) < left[0]) problems.push(`${kind}@${sk.index}: local_start_lsn ${st.local_start_lsn} below the first file left (segment ${left[0]})`);
      await caughtUp(sk);
    }
    t.equal(kinds.length, KILLS, `kill -9 after: ${kinds.join(', ')}`);
    t.same(problems, [], 'after each restart: every segment below the persisted backup_lsn is archived and verifies; local files are contiguous from local_start_lsn <= backup_lsn');
    t.same(work.errors, [], 'no client saw an error');
  });

  await t.test('after restart: backup_lsn and the archive agree, local files are contiguous, WAL identical, nothing acknowledged lost', async (t) => {
    await work.stop();
    const final = await primaryFlush(primary);
    const commit = await waitFor('the commit position to reach the primary flush', () => reportedFlush(primary), (f) => f >= final, 30_000);
    for (const sk of sks) await caughtUp(sk);
    await waitBackup(sks, segStart(segOf(commit)), 60_000);
    for (const sk of sks) {
      const st = await sk.status();
      const backup = parseLsn(st.backup_lsn);
      const localStart = parseLsn(st.local_start_lsn);
      t.same(await compareArchive(archive.storage, primary, firstSeg, segOf(backup)), [], `${sk.address}: every segment below backup_lsn ${st.backup_lsn} is archived, verifies and equals the primary's`);
      t.ok(localStart <= backup, `${sk.address}: nothing between the archive and local disk (local_start_lsn ${st.local_start_lsn} <= backup_lsn)`);
      // Removal of the last segments below the horizon may still be finishing: the first file reaches local_start_lsn's segment.
      const local = await waitFor(`${sk.address}: files from local_start_lsn`, () => sk.localSegments(), (l) => l[0] === segOf(localStart), 10_000, 100).catch(() => sk.localSegments());
      t.equal(local[0], segOf(localStart), `${sk.address}: the first local file is local_start_lsn's segment`);
      t.ok(contiguous(local), `${sk.address}: local segments ${local[0]}..${local[local.length - 1]} are contiguous`);
      t.equal(local[local.length - 1], segOf(parseLsn(st.flush_lsn) - 1n), `${sk.address}: up to the flush position's segment`);
      const n = Number(commit - localStart);
      t.ok(n > 0 && sk.wal(localStart, n, SEG).equals(readWal(primary.walDir, localStart, n, SEG)), `${sk.address}: WAL ${st.local_start_lsn}..${formatLsn(commit)} identical to the primary's`);
    }
    const acked = [...work.acked.keys()];
    const present = new Set((await primary.sql('select id from acked')).split('\n').filter(Boolean).map(Number));
    const missing = acked.filter((id) => !present.has(id));
    t.same(missing.slice(0, 20), [], `all ${acked.length} acknowledged ids are on the primary`);
    t.comment(`commit position ${formatLsn(commit)}; ${acked.length} acknowledged client commits`);
  });

  await proposer.stop();
});
