// `walkeeper promote` with real PostgreSQL 15: a standby that is behind is
// refused within its timeout and left a standby (promoted by hand, its
// proposer finds committed WAL it lacks and refuses); a caught-up standby is
// promoted (timeline 2, the switch point printed); `walkeeper propose`
// against it continues the quorum on timeline 2; sync-safekeepers moves a
// safekeeper that missed the switch; a proposer against the old primary
// (still on timeline 1) is refused naming both timelines and the switch
// point.
import t, { type Test } from 'tap';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import { runCli } from '../daemon/helpers.js';
import { sleep, waitFor } from '../helpers/support.js';
import { makeSynchronous, ProposerProc, quorumArgs, startStandby, startSynchronousQuorum, type QuorumSetup } from './harness.js';

async function promote(q: QuorumSetup, standbyPort: number, timeout: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['promote', '--standby', `host=127.0.0.1 port=${standbyPort} user=postgres`, ...quorumArgs(q.safekeepers), '--timeout', timeout], { timeoutMs: 120_000 });
}

/** A running quorum with a synchronous proposer, some committed rows, and a hot standby that has replayed them. */
async function setup(t: Test) {
  const q = await startSynchronousQuorum(t);
  const standby = await startStandby(t, q.primary, q.safekeepers[0]);
  await q.primary.sql('create table p (i int); insert into p select generate_series(1, 1000)');
  await waitFor('the standby to replay the rows', () => standby.sql('select count(*) from p').catch(() => ''), (v) => v === '1000');
  return { q, standby };
}

t.test('a standby that is behind is refused within its timeout and left a standby', async (t) => {
  const { q, standby } = await setup(t);
  // A server that is not a standby is refused before anything is fenced.
  const wrong = await promote(q, q.primary.port, '3s');
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /^walkeeper promote: 127\.0\.0\.1:\d+ is not a standby \(pg_is_in_recovery\(\) is false\)\n$/);
  await q.primary.sql('insert into p values (0)');
  t.equal(q.proposer.proc?.exitCode, null, 'the running proposer was not fenced: commits still return');
  // Point its walreceiver at nothing, then commit more through the quorum.
  await standby.sql("alter system set primary_conninfo = 'host=127.0.0.1 port=1 user=postgres'");
  await standby.sql('select pg_reload_conf()');
  await sleep(500);
  await q.primary.sql('insert into p select generate_series(1, 20000)');
  const started = Date.now();
  const r = await promote(q, standby.port, '3s');
  t.equal(r.code, 1, 'exit 1');
  t.equal(r.stdout, '');
  t.match(
    r.stderr,
    /^walkeeper promote: the standby has not caught up within 3s: received [0-9A-F]+\/[0-9A-F]+, replayed [0-9A-F]+\/[0-9A-F]+, the safekeepers' VCL is [0-9A-F]+\/[0-9A-F]+ \(\d+ bytes behind\); not promoted\n$/,
    'one line saying how far behind',
  );
  t.ok(Date.now() - started < 30_000, 'refused within its timeout (plus the sync)');
  t.equal(await standby.sql('select pg_is_in_recovery()'), 't', 'still a standby');
  const st = await Promise.all(q.safekeepers.map((s) => s.status()));
  t.ok(st.every((s) => s.commit_lsn === st[0].commit_lsn && s.flush_lsn === st[0].commit_lsn), 'the safekeepers are left consistent: all at the VCL');

  // Promoted anyway, by hand: a proposer in front of it finds committed WAL it lacks.
  await standby.sql('select pg_promote(true, 60)');
  const p = new ProposerProc(t, ['--primary', `host=127.0.0.1 port=${standby.port} user=postgres`, ...quorumArgs(q.safekeepers)]);
  p.start();
  const exit = await Promise.race([p.exit!, sleep(60_000).then(() => null)]);
  t.same(exit, { code: 1, signal: null }, 'its proposer exits 1');
  t.match(
    p.stderr,
    new RegExp(`^walkeeper propose: the new primary lacks committed WAL: timeline 2 forked from timeline 1 at [0-9A-F]+/[0-9A-F]+, but the safekeepers hold committed WAL of timeline 1 up to ${st[0].commit_lsn}\n`, 'm'),
    'naming the switch point and the VCL',
  );
  const after = await Promise.all(q.safekeepers.map((s) => s.status()));
  t.same(after.map((a) => [a.server.pg_timeline, a.flush_lsn]), st.map((b) => [1, b.flush_lsn]), 'nothing changed on the safekeepers');
});

t.test('a caught-up standby is promoted; propose continues on timeline 2; the old primary is refused', async (t) => {
  const { q, standby } = await setup(t);
  const began = Date.now();
  const r = await promote(q, standby.port, '30s');
  t.comment(`walkeeper promote took ${Date.now() - began} ms (command start to writable, a measurement, not a check)`);
  t.equal(r.code, 0, r.stderr);
  const m = /^switch LSN ([0-9A-F]+\/[0-9A-F]+), PostgreSQL timeline (\d+)\n$/.exec(r.stdout);
  t.ok(m, `prints the switch point and the timeline: ${r.stdout.trim()}`);
  if (!m) return;
  t.equal(m[2], '2', 'timeline 2');
  const x = parseLsn(m[1]);
  const vcl = parseLsn((await q.safekeepers[0].status()).commit_lsn);
  t.ok(x <= vcl && vcl - x < 8192n, `the switch point ${m[1]} is at or just below the VCL ${formatLsn(vcl)}`);
  t.equal(await standby.sql('select pg_is_in_recovery()'), 'f', 'it accepts writes');
  t.equal(await standby.sql('select count(*) from p'), '1000', 'with every committed row');
  t.equal(await q.proposer.exit!.then((e) => e.code), 1, 'the old proposer was fenced');

  // The proposer in front of the new primary continues the quorum on timeline 2,
  // with the third safekeeper down: it stays on timeline 1 for now.
  await q.safekeepers[2].kill9();
  const next = new ProposerProc(t, ['--primary', `host=127.0.0.1 port=${standby.port} user=postgres`, ...quorumArgs(q.safekeepers)]);
  next.start();
  await next.waitLog('a quorum holds WAL of this term: commits flow', 0, 60_000);
  await makeSynchronous(standby);
  await standby.sql('insert into p values (-1)');
  const st = await Promise.all(q.safekeepers.slice(0, 2).map((s) => s.status()));
  t.same(st.map((s) => s.server.pg_timeline), [2, 2], 'the live safekeepers are on PostgreSQL timeline 2');
  const commit = parseLsn(st[0].commit_lsn);
  t.ok(commit > x, `WAL of timeline 2 is committed through the quorum (${formatLsn(commit)} > ${m[1]})`);
  t.equal((await next.stop())?.code, 0);

  // sync-safekeepers moves the one left on timeline 1: it gets the history first.
  await q.safekeepers[2].start();
  t.equal((await q.safekeepers[2].status()).server.pg_timeline, 1, 'the third safekeeper is still on timeline 1');
  const s = await runCli(['sync-safekeepers', ...quorumArgs(q.safekeepers)], { timeoutMs: 60_000 });
  t.equal(s.code, 0, s.stderr);
  const vcl2 = parseLsn(s.stdout.trim());
  t.ok(vcl2 >= commit, `the VCL ${s.stdout.trim()} holds the timeline 2 commit`);
  const all = await Promise.all(q.safekeepers.map((sk) => sk.status()));
  t.same(all.map((a) => [a.server.pg_timeline, parseLsn(a.commit_lsn), parseLsn(a.flush_lsn)]), [[2, vcl2, vcl2], [2, vcl2, vcl2], [2, vcl2, vcl2]], 'all three on timeline 2 at the VCL');

  // The old primary, still on timeline 1, gets its own proposer: refused.
  const old = new ProposerProc(t, ['--primary', `host=127.0.0.1 port=${q.primary.port} user=postgres`, ...quorumArgs(q.safekeepers), '--slot', 'old', '--application-name', 'old']);
  old.start();
  const exit = await Promise.race([old.exit!, sleep(60_000).then(() => null)]);
  t.same(exit, { code: 1, signal: null }, 'the old primary\'s proposer exits 1');
  t.match(
    old.stderr,
    new RegExp(`^walkeeper propose: the primary is on PostgreSQL timeline 1, but the safekeepers hold WAL of PostgreSQL timeline 2, which forked from timeline 1 at ${m[1]}`, 'm'),
    'naming both timelines and the switch point',
  );
  t.equal((await Promise.all(q.safekeepers.map((s) => s.status()))).map((s) => s.server.pg_timeline).join(), '2,2,2', 'nothing changed on the safekeepers');
});
