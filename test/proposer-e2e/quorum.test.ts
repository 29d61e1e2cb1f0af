// The quorum guarantee for unmodified PostgreSQL, end to end: pgbench and
// id-tracking clients commit through a primary whose synchronous standby is
// `walkeeper propose` in front of three safekeepers, while safekeepers and
// the proposer are killed with SIGKILL and restarted.
//
//  * one of three down at a time (random, seeded): commits keep flowing;
//  * two of three down: commits block; one back: they resume;
//  * a lone safekeeper gets WAL the others lack, then it and the proposer
//    die; a new proposer wins a higher term with the other two, recovers
//    (VCL below the lone one's WAL), streams; the lone one comes back and
//    its WAL beyond the VCL is rewritten;
//  * at the end every commit a client saw is on a hot standby that streams
//    from a safekeeper, the standby's feedback reached the primary's slot,
//    and all safekeepers hold WAL byte-identical to each other and to the
//    primary's pg_wal from the first segment up to the commit position.
import t from 'tap';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import {
  makeSynchronous,
  readWal,
  reportedFlush,
  startQuorum,
  startStandby,
  Workload,
  type Safekeeper,
} from './harness.js';
import { sleep, until, waitFor, xorshift32 } from '../helpers/support.js';

const seed = Number(process.env.WK_QUORUM_SEED ?? 20261207);
const RANDOM_PHASE_MS = Number(process.env.WK_QUORUM_RANDOM_MS ?? 20_000);

t.test('commits through a quorum of three survive safekeeper and proposer crashes', async (t) => {
  t.comment(`seed ${seed} (WK_QUORUM_SEED to repeat)`);
  const rnd = xorshift32(seed);
  const q = await startQuorum(t, { proposerArgs: ['--max-buffer', '1MB'] });
  const { primary, safekeepers: sks, proposer, segSize } = q;
  await primary.pgbench(['-i', '-s', '1', '-q']);
  await primary.sql('create table filler (id int, pad text)');

  proposer.start();
  const fresh = await proposer.waitLog('fresh timeline: every voter is empty; WAL starts here');
  const startLsn = parseLsn(String(fresh.startLsn));
  t.equal(startLsn % BigInt(segSize), 0n, `a fresh timeline starts at a segment boundary (${formatLsn(startLsn)})`);
  await makeSynchronous(primary);
  const firstTerm = BigInt(String((await proposer.waitLog('won the vote')).term));

  const standby = await startStandby(t, primary, sks[0]);
  const work = await Workload.start(primary, 3);
  const bench = primary.pgbench(['-n', '-N', '-c', '2', '-j', '1', '-T', String(Math.round(RANDOM_PHASE_MS / 1000) + 15)]);
  bench.catch(() => {});
  await waitFor('first commits', () => work.count, (n) => n > 20);

  /** Wait until `sk` holds WAL up to the commit position as it is now: it counts for the quorum again. */
  const caughtUp = async (sk: Safekeeper): Promise<void> => {
    const target = await reportedFlush(primary);
    await waitFor(`${sk.address} to catch up to ${formatLsn(target)}`, () => sk.flushLsn(), (f) => f >= target, 30_000);
  };

  await t.test('one of three down at a time: commits keep flowing', async (t) => {
    const stalls: string[] = [];
    let kills = 0;
    const mark = proposer.logs.length;
    const phaseEnd = Date.now() + RANDOM_PHASE_MS;
    // At least three cycles however slow the machine, so the count below holds by construction.
    while (kills < 3 || Date.now() < phaseEnd) {
      const sk = sks[Math.floor(rnd() * sks.length)];
      await sk.kill9();
      kills++;
      const before = work.count;
      await sleep(800 + Math.floor(rnd() * 1500));
      // A slow machine may need longer for the next commit: a stall is none within a generous deadline.
      const committed = await until(`a commit while ${sk.address} is down`, () => work.count > before, 30_000).then(
        () => true,
        () => false,
      );
      if (!committed) stalls.push(`no commit while ${sk.address} was down`);
      await sk.start();
      await caughtUp(sk);
      await sleep(Math.floor(rnd() * 800));
    }
    t.ok(kills >= 3, `${kills} kill -9 / restart cycles`);
    t.same(stalls, [], 'every down interval saw commits');
    // Failed reconnects while a safekeeper is down are details: one warning per outage.
    t.equal(proposer.lines('safekeeper unavailable; retrying with backoff', mark).length, kills, 'each outage logged once');
    t.comment(`${work.count} commits acknowledged so far`);
  });

  await t.test('two of three down: commits block, and resume when one returns', async (t) => {
    await sks[1].kill9();
    await sks[2].kill9();
    // Commits already on a quorum may still be returning: wait until a second passes without one.
    let count = work.count;
    await until('commits in flight to return', async () => {
      const before = work.count;
      await sleep(1000);
      count = work.count;
      return count === before;
    }, 30_000, 0);
    const flush = await reportedFlush(primary);
    await sleep(2000);
    t.equal(work.count, count, 'no commit returned while two of three were down');
    t.equal(await reportedFlush(primary), flush, 'the reported flush position did not move');
    await sks[1].start();
    await waitFor('commits to resume', () => work.count, (n) => n > count + 10, 30_000);
    t.pass(`commits resumed with ${sks[1].address} back (${work.count - count} more)`);
    await sks[2].start();
    await caughtUp(sks[2]);
    await caughtUp(sks[1]);
  });

  await t.test('proposer kill -9: a new term recovers and rewrites an older epoch beyond the VCL', async (t) => {
    // Only sks[2] is up: it gets WAL nobody else has (a commit that does not wait for the standby).
    await sks[0].kill9();
    await sks[1].kill9();
    const before = parseLsn(await primary.sql('select pg_current_wal_flush_lsn()'));
    await primary.sql("set synchronous_commit = local; insert into filler select g, repeat('x', 400) from generate_series(1, 3000) g");
    // The proposer's window (1 MB here) holds what the quorum lacks; the lone one gets at most that much.
    const loneFlush = await waitFor('the lone safekeeper to get the extra WAL', () => sks[2].flushLsn(), (f) => f >= before + 256n * 1024n, 30_000);
    const mark = proposer.logs.length;
    await proposer.kill9();
    await sks[2].kill9();
    await sks[0].start();
    await sks[1].start();
    const count = work.count;
    proposer.start();
    const won = await proposer.waitLog('won the vote', mark);
    t.ok(BigInt(String(won.term)) > firstTerm, `a new term: ${String(won.term)} > ${firstTerm}`);
    const rec = await proposer.waitLog("recovery: VCL is the most advanced voter's end of WAL", mark);
    const vcl = parseLsn(String(rec.vcl));
    t.ok(vcl < loneFlush, `VCL ${formatLsn(vcl)} is below the lone safekeeper's WAL end ${formatLsn(loneFlush)}`);
    await proposer.waitLog('a quorum holds WAL of this term: commits flow', mark);
    await waitFor('commits to resume under the new term', () => work.count, (n) => n > count + 10, 30_000);
    t.pass('streaming again');
    await sks[2].start();
    const joined = await waitFor(
      'the lone safekeeper to rejoin',
      () => proposer.lines('safekeeper joined; its WAL after the start position is rewritten', mark).find((l) => l.safekeeper === sks[2].address),
      (l) => l !== undefined,
      30_000,
    );
    t.equal(joined!.startLsn, formatLsn(vcl), 'it is streamed from the VCL, truncating the older epoch');
    await caughtUp(sks[2]);
  });

  await t.test('every acknowledged commit is on the standby; the WAL is byte-identical', async (t) => {
    const benchOut = await bench;
    const processed = Number(/actually processed: (\d+)/.exec(benchOut)?.[1] ?? NaN);
    await work.stop();
    t.same(work.errors, [], 'no client saw an error');
    const target = parseLsn(await primary.sql('select pg_current_wal_flush_lsn()'));
    const commit = await waitFor('the commit position to reach the primary flush', () => reportedFlush(primary), (f) => f >= target, 30_000);
    for (const sk of sks) await waitFor(`${sk.address} to hold WAL to ${formatLsn(commit)}`, () => sk.flushLsn(), (f) => f >= commit, 30_000);

    const length = Number(commit - startLsn);
    const primaryWal = readWal(primary.walDir, startLsn, length, segSize);
    for (const sk of sks) {
      const wal = sk.wal(startLsn, length, segSize);
      t.ok(wal.equals(primaryWal), `${sk.address}: ${length} bytes from ${formatLsn(startLsn)} to ${formatLsn(commit)} identical to the primary's`);
    }

    const acked = [...work.acked.keys()];
    const max = Math.max(...acked);
    await waitFor(
      'the standby to replay every acknowledged commit',
      () => standby.sql(`select count(*) from acked where id <= ${max}`).then(Number),
      (n) => n >= acked.length,
      60_000,
      250,
    );
    const onStandby = new Set((await standby.sql('select id from acked')).split('\n').filter(Boolean).map(Number));
    const missing = acked.filter((id) => !onStandby.has(id));
    t.same(missing.slice(0, 20), [], `all ${acked.length} acknowledged ids are on the standby`);
    const history = Number(await standby.sql('select count(*) from pgbench_history'));
    t.ok(Number.isFinite(processed) && history >= processed, `pgbench: ${processed} transactions processed, ${history} on the standby`);

    const catchups = proposer.lines('safekeeper catching up from a peer');
    t.ok(catchups.length > 0, `${catchups.length} catch-ups from a peer (WAL that had left the 1 MB window)`);

    const xmin = await waitFor('standby feedback to reach the slot', () => primary.sql("select coalesce(xmin::text, '') from pg_replication_slots where slot_name = 'walkeeper'"), (v) => v !== '', 20_000);
    t.pass(`the primary's slot holds xmin ${xmin} from the standby's feedback`);
    t.comment(`commit position ${formatLsn(commit)}; ${acked.length} client commits, ${processed} pgbench transactions`);
  });

  await t.test('the proposer stops cleanly on SIGTERM', async (t) => {
    const r = await proposer.stop();
    t.equal(r?.code, 0, 'exit 0');
  });
});

