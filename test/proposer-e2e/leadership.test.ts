// Two proposers for one timeline: the second wins a higher term, the first
// finds out on its next request and ends with a clear message and exit 1.
// A primary restart: the proposer reconnects and commits go on. Also the
// command line's usage errors (exit 2).
import t from 'tap';
import { runCli } from '../daemon/helpers.js';
import { makeSynchronous, ProposerProc, startQuorum, TENANT, TIMELINE } from './harness.js';

t.test('usage errors exit 2 with one line', async (t) => {
  const r = await runCli(['propose']);
  t.equal(r.code, 2);
  t.match(r.stderr, /^walkeeper propose: --primary is required/);
  const h = await runCli(['propose', '--help']);
  t.equal(h.code, 0);
  t.match(h.stdout, /synchronous_standby_names/);
  const top = await runCli(['--help']);
  t.match(top.stdout, /propose\s+quorum proposer/);
});

t.test('a proposer that loses to a higher term stops with exit 1', async (t) => {
  const q = await startQuorum(t);
  const a = q.proposer;
  a.start();
  await a.waitLog('a quorum holds WAL of this term: commits flow');
  const wonA = await a.waitLog('won the vote');

  const b = new ProposerProc(t, [
    '--primary',
    `host=127.0.0.1 port=${q.primary.port} user=postgres`,
    '--safekeepers',
    q.safekeepers.map((s) => s.address).join(','),
    '--tenant',
    TENANT,
    '--timeline',
    TIMELINE,
    '--slot',
    'second',
    '--application-name',
    'second',
  ]);
  b.start();
  const wonB = await b.waitLog('won the vote');
  t.ok(BigInt(String(wonB.term)) > BigInt(String(wonA.term)), `the second proposer won term ${String(wonB.term)}`);
  const rec = await b.waitLog("recovery: VCL is the most advanced voter's end of WAL");
  t.ok(rec.vcl, `it recovered from VCL ${String(rec.vcl)}`);
  await b.waitLog('a quorum holds WAL of this term: commits flow');

  // New WAL: the first proposer pushes it, is refused, and finds the higher vote.
  await q.primary.sql('set synchronous_commit = local; create table bump (i int)');
  const exit = await Promise.race([a.exit!, new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())]);
  t.same(exit, { code: 1, signal: null }, 'the first proposer exited 1');
  t.match(a.stderr, /^walkeeper propose: lost leadership: .*(voted for|refused)/m, 'with a message naming the cause');
  t.ok(a.lines('lost leadership; stopping').length === 1, 'logged once');
  const r = await b.stop();
  t.equal(r?.code, 0, 'the winner stops cleanly');
});

t.test('the proposer follows a restart of the primary', async (t) => {
  const q = await startQuorum(t);
  q.proposer.start();
  await q.proposer.waitLog('a quorum holds WAL of this term: commits flow');
  await makeSynchronous(q.primary);
  await q.primary.sql('create table r (i int); insert into r values (1)');
  await q.primary.stop();
  await q.primary.start();
  await q.proposer.waitLog('primary unavailable; retrying with backoff');
  // This commit returns only once the proposer streams again and the quorum has it.
  await q.primary.sql('insert into r values (2)');
  t.equal(await q.primary.sql('select count(*) from r'), '2', 'commits return after the restart');
  t.equal(q.proposer.lines('streaming WAL from the primary').length, 2, 'streaming resumed (logged once per start)');
  t.equal(q.proposer.lines('primary unavailable; retrying with backoff').length, 1, 'the outage logged once');
  const r = await q.proposer.stop();
  t.equal(r?.code, 0);
});
