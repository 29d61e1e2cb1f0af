// Real pg_receivewal against the real daemon, fed by a proposer with a live
// PostgreSQL 15 primary's WAL: what it writes is byte-identical to the
// primary's segments, it sees WAL only up to commit_lsn, it keeps receiving
// as more is pushed, and a second run into the same directory resumes from
// its .partial segment.
import t from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, parseSegmentFileName, segmentFileName, segmentFloor, segmentNumber, segmentOffset, segmentStart } from '../../src/lsn.js';
import { pgTempDir, runPg } from '../helpers/pg.js';
import { tempDir } from '../daemon/helpers.js';
import { randomChunks, readWal } from './feeder.js';
import { checkReceived, electFeeder, flushLsn, readerConn, receivedMatches, SEG, spawnPg, startPrimary, startWalkeeper } from './helpers.js';
import { waitFor, xorshift32 } from '../helpers/support.js';

t.test('pg_receivewal streams from the daemon: follows pushes and commit_lsn, byte-identical, resumes from its .partial', async (t) => {
  const p = await startPrimary(t);
  const insert = (from: number, to: number): Promise<string> => p.pg.sql(`insert into t select g, repeat(md5(g::text), 3) from generate_series(${from}, ${to}) g`);
  await p.pg.sql('create table t (id int, pad text)');
  await insert(1, 10_000);

  const wk = await startWalkeeper(t, tempDir(t, 'wk-e2e-recv-'));
  const feeder = await electFeeder(t, p, wk);
  t.equal(feeder.greeting.flushLsn, 0n, 'the timeline starts empty');
  const rng = xorshift32(20240611);
  const chunks = randomChunks(rng);

  const f1 = await flushLsn(p.pg);
  const r1 = await feeder.push(f1, { chunks });
  t.equal(r1.flushLsn, f1, 'the safekeeper acknowledged the primary flush position');
  t.equal(r1.epoch, feeder.nodeId.term, 'in the proposer epoch');
  t.equal(feeder.commitSent, f1, 'and the proposer committed it');
  t.ok(feeder.stats.requests > 20, `${feeder.stats.requests} requests of random sizes`);

  const out = pgTempDir('wk-e2e-recv-out-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const first = spawnPg(t, 'pg_receivewal', ['-d', readerConn(wk), '-D', out, '--no-loop', '--no-sync', '-v', '-s', '1']);
  // An empty directory: it starts at the segment of IDENTIFY_SYSTEM's xlogpos, the commit position.
  const from = segmentFloor(f1, SEG);
  await waitFor('pg_receivewal to reach the commit position', () => receivedMatches(out, p.pg.walDir, from, f1), (ok) => ok);
  t.match(first.stderr(), `starting log streaming at ${formatLsn(from)} (timeline 1)`);

  // WAL pushed but committed only part of the way: the reader stops at commit_lsn.
  await insert(10_001, 16_000);
  const f2 = await flushLsn(p.pg);
  const held = f1 + (f2 - f1) / 2n;
  await feeder.push(f2, { chunks, maxCommit: held });
  t.equal(feeder.acked, f2, 'all of it acknowledged');
  t.equal(feeder.commitSent, held, 'commit_lsn held back');
  await waitFor('pg_receivewal to reach the held commit position', () => receivedMatches(out, p.pg.walDir, from, held), (ok) => ok);
  await new Promise((r) => setTimeout(r, 500));
  const heldSeg = readFileSync(join(out, segmentFileName(1, segmentNumber(held, SEG), SEG) + '.partial'));
  const heldOff = segmentOffset(held, SEG);
  const heldEnd = segmentNumber(f2, SEG) === segmentNumber(held, SEG) ? segmentOffset(f2, SEG) : SEG;
  t.ok(
    heldSeg.subarray(heldOff, heldEnd).every((b) => b === 0),
    `nothing past commit_lsn ${formatLsn(held)} reached pg_receivewal (flush is ${formatLsn(f2)})`,
  );
  t.notOk(receivedMatches(out, p.pg.walDir, held, f2), 'the primary has WAL there that was not sent');

  // The commit catches up (a heartbeat): the rest arrives.
  await feeder.heartbeat();
  t.equal(feeder.commitSent, f2);
  await waitFor('pg_receivewal to follow the commit position', () => receivedMatches(out, p.pg.walDir, from, f2), (ok) => ok);

  // Keep pushing new WAL from the live primary, across segment boundaries: each batch arrives.
  let pushed = f2;
  for (let round = 0; round < 3; round++) {
    await insert(16_001 + round * 6000, 22_000 + round * 6000);
    if (round === 1) await p.pg.sql('select pg_switch_wal()');
    const f = await flushLsn(p.pg);
    await feeder.push(f, { chunks });
    await waitFor(`round ${round} to arrive`, () => receivedMatches(out, p.pg.walDir, pushed, f), (ok) => ok);
    pushed = f;
  }
  t.ok(segmentNumber(pushed, SEG) > segmentNumber(from, SEG) + 2n, `streamed across several segments (${formatLsn(from)} .. ${formatLsn(pushed)})`);

  // Stop it (SIGINT, as an operator would) in the middle of a segment.
  if (segmentOffset(pushed, SEG) === 0) {
    await insert(40_001, 41_000);
    const f = await flushLsn(p.pg);
    await feeder.push(f, { chunks });
    await waitFor('the last batch to arrive', () => receivedMatches(out, p.pg.walDir, pushed, f), (ok) => ok);
    pushed = f;
  }
  first.child.kill('SIGINT');
  const r = await first.done;
  t.equal(r.code, 0, `pg_receivewal stopped cleanly: ${r.stderr.split('\n').slice(-3).join(' | ')}`);
  const stopped = checkReceived(out, p.pg.walDir, pushed);
  t.ok(stopped.complete.length >= 2, `${stopped.complete.length} complete segments`);
  t.equal(stopped.identical, stopped.complete.length, 'every complete segment is byte-identical to the primary');
  t.ok(stopped.partialOk, `${stopped.partial} holds the primary's WAL up to ${formatLsn(pushed)}`);
  const partialStart = segmentStart(parseSegmentFileName(stopped.partial!.replace('.partial', ''), SEG)!.segno, SEG);

  // While no reader runs, more WAL is pushed; then a second run into the same directory.
  for (let round = 0; round < 2; round++) {
    await insert(50_001 + round * 8000, 58_000 + round * 8000);
    await p.pg.sql('select pg_switch_wal()');
  }
  await insert(80_001, 81_000);
  const end = await flushLsn(p.pg);
  await feeder.push(end, { chunks });
  t.ok(segmentNumber(end, SEG) > segmentNumber(partialStart, SEG), 'the commit position is in a later segment than the .partial');
  // pg_receivewal stops once it has received WAL past --endpos (strictly), hence end - 1.
  const second = await runPg('pg_receivewal', ['-d', readerConn(wk), '-D', out, '--no-loop', '--no-sync', '-v', '-E', formatLsn(end - 1n)], { timeoutMs: 30_000 });
  t.equal(second.code, 0, second.stderr);
  t.match(second.stderr, `stopped log streaming at ${formatLsn(end)}`, 'it received exactly up to the commit position');
  t.match(second.stderr, `starting log streaming at ${formatLsn(partialStart)} (timeline 1)`, 'resumed at the start of its .partial segment');

  const final = checkReceived(out, p.pg.walDir, end);
  const expected: string[] = [];
  for (let s = segmentNumber(from, SEG); s < segmentNumber(end, SEG); s++) expected.push(segmentFileName(1, s, SEG));
  t.same(final.complete, expected, 'every segment from the first one streamed to the one before the end');
  t.equal(final.identical, expected.length, `all ${expected.length} complete segments byte-identical to the primary's`);
  if (segmentOffset(end, SEG) !== 0) t.ok(final.partialOk, `${final.partial} matches the primary up to ${formatLsn(end)}`);
  t.ok(receivedMatches(out, p.pg.walDir, from, end), `${Number(end - from)} bytes identical from ${formatLsn(from)} to ${formatLsn(end)}`);
  t.equal(readWal(p.pg.walDir, from, from + 16n, SEG).readUInt16LE(0), 0xd110, 'the primary WAL is PostgreSQL 15 WAL');
});
