// `walkeeper sync-safekeepers` against real safekeeper daemons: an empty
// timeline prints 0/0; after a proposer ran it prints the VCL, every live
// safekeeper's commit position equals it, and the running proposer loses
// leadership; one safekeeper down works, two down fail with one line; a
// lagging safekeeper is recovered to the VCL. Also the usage errors.
import t from 'tap';
import { parseLsn } from '../../src/lsn.js';
import { runCli } from '../daemon/helpers.js';
import { sleep, waitFor } from '../helpers/support.js';
import { quorumArgs, Safekeeper, startQuorum, startSynchronousQuorum, TIMELINE, type QuorumSetup } from './harness.js';

t.test('usage errors exit 2 with one line; --help', async (t) => {
  const r = await runCli(['sync-safekeepers', '--safekeepers', '127.0.0.1:1', '--tenant', 'x', '--timeline', TIMELINE]);
  t.equal(r.code, 2);
  t.match(r.stderr, /^walkeeper sync-safekeepers: --tenant: invalid id "x": expected 32 hex digits\n$/);
  const m = await runCli(['sync-safekeepers']);
  t.match(m.stderr, /^walkeeper sync-safekeepers: --safekeepers is required/);
  const d = await runCli(['sync-safekeepers', ...quorumArgs([]).slice(2), '--safekeepers', '127.0.0.1:1', '--timeout', '0s']);
  t.match(d.stderr, /--timeout: the duration must be more than 0/);
  const h = await runCli(['sync-safekeepers', '--help']);
  t.equal(h.code, 0);
  t.match(h.stdout, /VCL/);
  const p = await runCli(['promote', '--safekeepers', '127.0.0.1:1']);
  t.equal(p.code, 2);
  t.match(p.stderr, /^walkeeper promote: --tenant is required/);
  const top = await runCli(['--help']);
  t.match(top.stdout, /sync-safekeepers\s+fence/);
  t.match(top.stdout, /promote\s+promote a hot standby/);
});

async function sync(q: QuorumSetup, extra: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['sync-safekeepers', ...quorumArgs(q.safekeepers), ...extra], { timeoutMs: 60_000 });
}

/** Every listed safekeeper's commit and flush positions, as its admin API shows them. */
async function positions(sks: readonly Safekeeper[]): Promise<{ commit: bigint; flush: bigint }[]> {
  return Promise.all(sks.map(async (s) => {
    const st = await s.status();
    return { commit: parseLsn(st.commit_lsn), flush: parseLsn(st.flush_lsn) };
  }));
}

t.test('an empty timeline prints 0/0', async (t) => {
  const q = await startQuorum(t);
  const r = await sync(q);
  t.equal(r.stderr, '');
  t.equal(r.stdout, '0/0\n');
  t.equal(r.code, 0);
});

t.test('after a proposer ran: the VCL, every commit position at it, and the proposer fenced', async (t) => {
  const q = await startSynchronousQuorum(t);
  await q.primary.sql('create table s (i int); insert into s select generate_series(1, 1000)');
  const r = await sync(q);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^[0-9A-F]+\/[0-9A-F]+\n$/, 'one line X/Y');
  const vcl = parseLsn(r.stdout.trim());
  const pos = await positions(q.safekeepers);
  t.same(pos.map((p) => p.commit), [vcl, vcl, vcl], `every safekeeper's commit_lsn is the VCL ${r.stdout.trim()}`);
  t.ok(pos.every((p) => p.flush === vcl), 'and each holds WAL up to it');
  // The proposer's next append is refused: it exits with lost leadership.
  await q.primary.sql('set synchronous_commit = local; insert into s values (0)');
  const exit = await Promise.race([q.proposer.exit!, sleep(30_000).then(() => null)]);
  t.same(exit, { code: 1, signal: null }, 'the running proposer exited 1');
  t.match(q.proposer.stderr, /^walkeeper propose: lost leadership: /m);
});

t.test('one safekeeper down works; two down fail with one line', async (t) => {
  const q = await startSynchronousQuorum(t);
  await q.primary.sql('create table s (i int); insert into s values (1)');
  await q.proposer.stop();
  await q.safekeepers[2].kill9();
  const r = await sync(q);
  t.equal(r.code, 0, r.stderr);
  const vcl = parseLsn(r.stdout.trim());
  t.same((await positions(q.safekeepers.slice(0, 2))).map((p) => p.commit), [vcl, vcl], 'the two live safekeepers have commit_lsn = VCL');

  await q.safekeepers[1].kill9();
  const started = Date.now();
  const f = await sync(q, ['--timeout', '2s']);
  t.equal(f.code, 1);
  t.equal(f.stdout, '');
  t.match(f.stderr, /^walkeeper sync-safekeepers: no quorum: 1 of 3 safekeepers answered, 2 needed \(.*\)\n$/, 'one line naming the count and the causes');
  t.ok(Date.now() - started < 20_000, 'within its timeout (plus start-up)');
});

t.test('a lagging safekeeper is recovered to the VCL', async (t) => {
  const q = await startSynchronousQuorum(t);
  await q.primary.sql('create table s (i int)');
  await q.safekeepers[2].kill9();
  // WAL the third safekeeper misses: a few segments' worth.
  await q.primary.sql("insert into s select generate_series(1, 60000)");
  await q.proposer.stop();
  await q.safekeepers[2].start();
  const behind = await q.safekeepers[2].flushLsn();
  const r = await sync(q);
  t.equal(r.code, 0, r.stderr);
  const vcl = parseLsn(r.stdout.trim());
  t.ok(behind < vcl, `the third safekeeper was behind (${behind} < ${vcl})`);
  const pos = await waitFor('positions', () => positions(q.safekeepers), (p) => p.every((x) => x.commit === vcl));
  t.same(pos.map((p) => p.flush), [vcl, vcl, vcl], 'it holds WAL up to the VCL now');
  const a = q.safekeepers[0].wal(vcl - 100_000n, 100_000, q.segSize);
  const c = q.safekeepers[2].wal(vcl - 100_000n, 100_000, q.segSize);
  t.ok(a.equals(c), 'the recovered WAL is the donor\'s');
});
