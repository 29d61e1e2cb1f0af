// Zero-data-loss failover for unmodified PostgreSQL 15, end to end: a primary
// with `walkeeper propose` in front of three safekeepers, two hot standbys and
// pg_receivewal streaming from safekeepers, id-recording clients and pgbench.
//
//  * the primary dies (kill -9, with its proposer) under load; `walkeeper
//    promote` turns a standby into the primary of PostgreSQL timeline 2; a
//    proposer in front of it carries the quorum on: every acknowledged id is
//    there with the content its client wrote, and on the other standby once
//    it has followed the switch; the safekeepers' WAL is byte-identical to the
//    new primary's pg_wal across the switch; pg_receivewal followed it;
//  * the old primary, restarted on timeline 1 with its own proposer, is
//    refused, and a commit on it never returns; pg_rewind brings it back as a
//    standby that follows;
//  * a second failover, to timeline 3, the same way;
//  * a standby that is behind (cut off from its safekeeper) is not promoted,
//    and leaves the safekeepers consistent and the quorum working.
import t, { type Test } from 'tap';
import pg from 'pg';
import { formatLsn, segmentOffset, segmentStart } from '../../src/lsn.js';
import { historyFileName } from '../../src/wal/history.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { runPg, type PgCluster } from '../helpers/pg.js';
import { sleep, waitFor, xorshift32 } from '../helpers/support.js';
import { APP, makeSynchronous, proposerFor, readWal, safekeeperConninfo, startStandbyIn } from '../proposer-e2e/harness.js';
import {
  ackedRows,
  compareAcked,
  compareReceived,
  exitWithin,
  failover,
  firstSegmentStart,
  historyText,
  pgbench,
  promote,
  receiving,
  segmentPath,
  segOf,
  SEG,
  settledCommit,
  startRig,
  waitReplayed,
  walBytes,
  writingTimeline,
  type Failover,
} from './harness.js';

const seed = Number(process.env.WK_FAILOVER_SEED ?? 20261207);
/** An id the old primary's client tries to commit; no client of the quorum uses it. */
const FENCED_ID = 1_000_000_000;

t.test('failover without losing an acknowledged commit, twice; the old primary fenced and rewound', async (t) => {
  t.comment(`seed ${seed} (WK_FAILOVER_SEED to repeat)`);
  const rnd = xorshift32(seed);
  const rig = await startRig(t, 3);
  const sks = rig.safekeepers;
  await waitFor('first commits', () => rig.work.count, (n) => n > 20);

  const [promotedFirst, promotedSecond] = rnd() < 0.5 ? rig.standbys : [...rig.standbys].reverse();

  /** Kill the primary `after` ms into a pgbench run, fail over to `standby`, and check what every failover must give. */
  const failoverUnderLoad = async (t: Test, standby: PgCluster, tli: number): Promise<Failover> => {
    const load = pgbench(rig.primary, 10);
    await sleep(1500 + Math.floor(rnd() * 2000));
    const f = await failover(rig, standby);
    await load;
    t.pass(`kill -9 of the primary after ${f.ackedBefore.size} acknowledged ids; promoted to timeline ${f.tli} at ${formatLsn(f.switchLsn)}`);
    t.comment(`walkeeper promote took ${f.promoteMs} ms; the first client commit through the quorum came ${f.firstCommitMs} ms after it started`);
    t.equal(f.tli, tli, `the promoted standby writes timeline ${tli}`);
    t.match(f.promote.stdout, formatLsn(f.switchLsn), 'promote printed the switch LSN');
    t.match(f.promote.stdout, new RegExp(`\\b${tli}\\b`), 'and the new timeline');
    const count = rig.work.count;
    await waitFor('commits through the quorum on the new primary', () => rig.work.count, (n) => n > count + 20, 60_000);
    const { missing, different } = compareAcked(f.ackedBefore, await ackedRows(rig.primary));
    t.same(missing, [], `all ${f.ackedBefore.size} ids acknowledged by the old primary are on the new one`);
    t.same(different, [], 'each with the content its client wrote');
    return f;
  };

  /** A standby follows the switch to `tli` (streaming from safekeeper `skPort`) and has every id acknowledged so far. */
  const follows = async (t: Test, standby: PgCluster, tli: number): Promise<void> => {
    const at = await waitFor(`the standby to stream timeline ${tli}`, () => receiving(standby), (v) => v.startsWith(`${tli}/`), 60_000, 200);
    t.ok(sks.some((s) => at === `${tli}/${s.pgPort}`), `the standby streams timeline ${tli} from a safekeeper (${at})`);
    const acked = new Map(rig.work.acked);
    await waitReplayed(standby, acked, `the standby to replay ${acked.size} acknowledged ids`);
    const { missing, different } = compareAcked(acked, await ackedRows(standby));
    t.same(missing, [], `all ${acked.size} acknowledged ids are on the standby`);
    t.same(different, [], 'with the content their clients wrote');
  };

  /** The safekeepers' and pg_receivewal's WAL against the primary's pg_wal, per segment file of the right timeline. */
  const sameWal = async (t: Test): Promise<void> => {
    const commit = await settledCommit(rig);
    const from = firstSegmentStart(rig.primary.walDir, rig.startLsn);
    const theirs = walBytes(rig.primary.walDir, from, commit, rig.ancestry);
    const files = rig.ancestry.spans.map((tl) => `timeline ${tl.timeline} from ${formatLsn(tl.start)}`).join(', ');
    for (const sk of sks) {
      t.ok(sk.wal(from, theirs.length, SEG, rig.ancestry).equals(theirs), `${sk.address}: ${formatLsn(from)}..${formatLsn(commit)} identical to the primary's pg_wal (${files})`);
    }

    const recv = rig.receiverDir;
    for (const { timeline: tli } of rig.ancestry.spans.slice(1)) {
      await waitFor(`pg_receivewal to fetch ${historyFileName(tli)}`, () => historyText(recv, tli), (h) => h !== null, 30_000);
      t.equal(historyText(recv, tli), historyText(rig.primary.walDir, tli), `pg_receivewal's ${historyFileName(tli)} is the primary's`);
    }
    const recvFrom = firstSegmentStart(recv, rig.startLsn);
    const want = walBytes(rig.primary.walDir, recvFrom, commit, rig.ancestry);
    await waitFor('pg_receivewal to reach the commit position', () => walBytes(recv, recvFrom, commit, rig.ancestry).equals(want), (ok) => ok, 30_000, 200);
    t.pass(`pg_receivewal holds ${formatLsn(recvFrom)}..${formatLsn(commit)} byte-identical, across the switch`);
    const { compared, differing } = compareReceived(recv, rig.primary.walDir);
    t.same(differing, [], `its ${compared} complete segment files are identical to the primary's files of the same name`);
    const last = rig.ancestry.spans.at(-1)!;
    const parent = rig.ancestry.spans.at(-2)!;
    if (segmentOffset(last.start, SEG) !== 0) {
      const seg = segOf(last.start);
      const partial = segmentPath(recv, parent.timeline, seg);
      t.ok(partial?.endsWith('.partial'), `timeline ${parent.timeline}'s switch segment stays .partial in pg_receivewal's directory`);
      const upTo = Number(last.start - segmentStart(seg, SEG));
      const start = segmentStart(seg, SEG);
      const parentTl = new TimelineAncestry(parent.timeline);
      t.ok(readWal(recv, start, upTo, SEG, parentTl).equals(readWal(rig.primary.walDir, start, upTo, SEG, parentTl)), `and holds timeline ${parent.timeline} up to the switch point`);
    }
  };

  let f1!: Failover;
  await t.test('first failover: kill -9 the primary under load, promote a standby, carry on', async (t) => {
    f1 = await failoverUnderLoad(t, promotedFirst, 2);
  });

  const other = promotedSecond;
  await t.test('the other standby follows the switch to timeline 2', async (t) => follows(t, other, 2));

  await t.test('the WAL is identical everywhere across the switch to timeline 2', sameWal);

  await t.test('the old primary, restarted on timeline 1, is fenced', async (t) => {
    const old = f1.oldPrimary;
    await old.start();
    t.equal(await writingTimeline(old), 1, 'it runs on timeline 1 again');
    const fenced = proposerFor(t, old, sks);
    fenced.start();
    const exit = await exitWithin(fenced, 60_000);
    t.ok(exit !== null && exit.code !== 0, `its proposer refuses: exit ${exit?.code}`);
    const why = fenced.stderr.trim();
    t.match(why, /timeline 1\b/, `naming timeline 1: ${why}`);
    t.match(why, /timeline 2\b/, 'and timeline 2');
    t.match(why, formatLsn(f1.switchLsn), 'and the switch point');

    // A commit on it waits for its synchronous standby, the refused proposer: it must never return success.
    const client = new pg.Client({ host: '127.0.0.1', port: old.port, user: 'postgres', database: 'postgres' });
    client.on('error', () => {});
    await client.connect();
    let outcome = 'waiting';
    const commit = client.query(`insert into acked (id, client, content) values (${FENCED_ID}, -1, 'old primary')`).then(
      () => (outcome = 'committed'),
      (err: Error) => (outcome = `failed: ${err.message}`),
    );
    await sleep(3000);
    t.equal(outcome, 'waiting', 'a commit on the old primary has not returned after 3 s');
    await old.stop();
    await commit;
    t.match(outcome, /^failed/, `stopping the old primary ends it without success (${outcome})`);
    t.equal(rig.proposer.proc?.exitCode, null, "the new primary's proposer runs on");
    const count = rig.work.count;
    await waitFor('commits on the new primary', () => rig.work.count, (n) => n > count + 10, 60_000);

    // The residual window: the cancelled wait left the commit visible on the old primary.
    await old.start();
    t.equal(await old.sql(`select count(*) from acked where id = ${FENCED_ID}`), '1', 'the unacknowledged row is visible on the old primary (the residual window)');
    await old.stop();
    t.equal(await rig.primary.sql(`select count(*) from acked where id = ${FENCED_ID}`), '0', 'and not on the new primary');
  });

  await t.test('pg_rewind brings the old primary back as a standby that follows', async (t) => {
    const old = f1.oldPrimary;
    await rig.primary.sql('checkpoint');
    const r = await runPg('pg_rewind', ['--target-pgdata', old.dataDir, '--source-server', rig.primary.connString(), '--write-recovery-conf', '--no-sync']);
    t.equal(r.code, 0, `pg_rewind: ${(r.stderr || r.stdout).trim().split('\n').at(-1)}`);
    const rewound = await startStandbyIn(rig.t, old.dataDir, sks[0], { synchronous_standby_names: APP });
    rig.standbys.push(rewound);
    await follows(t, rewound, 2);
    t.equal(await rewound.sql(`select count(*) from acked where id = ${FENCED_ID}`), '0', 'the old primary no longer has its unacknowledged row');
  });

  await t.test('second failover: timeline 3', async (t) => {
    const f2 = await failoverUnderLoad(t, other, 3);
    t.ok(f2.switchLsn > f1.switchLsn, `timeline 3 forks from timeline 2 at ${formatLsn(f2.switchLsn)}`);
  });

  const rewound = rig.standbys.at(-1)!;
  await t.test('the rewound standby follows the switch to timeline 3', async (t) => follows(t, rewound, 3));

  await t.test('the WAL is identical everywhere across timelines 1, 2 and 3', sameWal);

  await t.test('a standby that is behind is not promoted; the safekeepers stay consistent', async (t) => {
    // Cut the standby off from its safekeeper: it receives nothing more while commits go on.
    await rewound.sql("alter system set primary_conninfo = ''");
    await rewound.sql('select pg_reload_conf()');
    await waitFor('the standby to stop streaming', () => receiving(rewound), (v) => v === '', 30_000);
    const count = rig.work.count;
    await waitFor('commits the standby does not receive', () => rig.work.count, (n) => n > count + 20, 30_000);
    const r = await promote(rig, rewound, '3s');
    t.not(r.code, 0, `promote refuses: ${r.stderr.trim()}`);
    t.match(r.stderr, /behind/, 'saying how far behind the standby is');
    t.equal(await rewound.sql('select pg_is_in_recovery()'), 't', 'the standby is still a standby');

    // promote's sync-safekeepers took a higher term: the running proposer is fenced.
    const exit = await exitWithin(rig.proposer, 60_000);
    t.equal(exit?.code, 1, 'the running proposer lost its term and stopped');
    const states = await Promise.all(sks.map((s) => s.status()));
    t.same(new Set(states.map((s) => s.commit_lsn)).size, 1, `every safekeeper has commit position ${states[0].commit_lsn}`);
    t.same(new Set(states.map((s) => s.flush_lsn)).size, 1, `and WAL up to ${states[0].flush_lsn}`);

    rig.proposer = proposerFor(rig.t, rig.primary, sks);
    rig.proposer.start();
    await makeSynchronous(rig.primary);
    const before = rig.work.count;
    await waitFor('commits through a new proposer', () => rig.work.count, (n) => n > before + 20, 60_000);
    t.pass('the quorum works: commits flow through a new proposer');
    await rewound.sql(`alter system set primary_conninfo = '${safekeeperConninfo(sks[0]).replace(/'/g, "''")}'`);
    await rewound.sql('select pg_reload_conf()');
  });

  await t.test('at the end, every acknowledged commit is everywhere', async (t) => {
    const bench = await pgbench(rig.primary, 3);
    await rig.work.stop();
    const acked = rig.work.acked;
    const { missing, different } = compareAcked(acked, await ackedRows(rig.primary));
    t.same(missing, [], `all ${acked.size} acknowledged ids are on the primary`);
    t.same(different, [], 'with their content');
    await follows(t, rewound, 3);
    await sameWal(t);
    t.ok(bench.processed > 0, `pgbench: ${bench.processed} transactions on the last primary`);
    t.comment(`${acked.size} acknowledged ids; ${rig.work.errors.length} client errors while primaries died and were promoted`);
    const r = await rig.proposer.stop();
    t.equal(r?.code, 0, 'the proposer stops cleanly');
  });
});
