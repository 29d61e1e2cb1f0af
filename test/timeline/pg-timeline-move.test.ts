// A timeline's files across a PostgreSQL timeline switch, with the real
// storage: the move at a greeting truncates the parent's WAL at the switch
// point and starts the new timeline's file of that segment with the
// parent's bytes; the parent's file stays `.partial`; the end-of-WAL scan
// after a restart reads across the switch; a later truncation removes the
// later segments of every timeline; a refused greeting changes nothing.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { formatLsn, segmentFileName, segmentNumber, segmentOffset, type Lsn } from '../../src/lsn.js';
import type { NodeId, ServerInfo } from '../../src/protocol/types.js';
import { Timeline } from '../../src/timeline/timeline.js';
import { tempDir } from '../helpers/support.js';
import { WalBuilder } from '../wal/synth.js';

const SEG = 1 << 20;
const KEY = { tenantId: 'ab'.repeat(16), timelineId: 'cd'.repeat(16) };
const id = (term: bigint): NodeId => ({ term, uuid: new Uint8Array(16).fill(1) });
const server = (timeline: number): ServerInfo => ({
  protocolVersion: 1,
  pgVersion: 150004,
  nodeId: id(1n),
  systemId: 42n,
  timelineId: Buffer.from(KEY.timelineId, 'hex'),
  walEnd: 0n,
  timeline,
  walSegSize: SEG,
  tenantId: Buffer.from(KEY.tenantId, 'hex'),
});

/**
 * WAL from 0/100000: records to 2.4 segments in (the switch point X is the
 * end of the last one), then a tail written on `tailTli` with its own
 * record sizes: the old primary's WAL past X, or the new timeline's.
 */
function wal(tailTli: number, tailBody: number): { bytes: Uint8Array; start: Lsn; switchLsn: Lsn; end: Lsn } {
  const b = new WalBuilder({ segSize: SEG, start: BigInt(SEG) });
  b.fill(Math.floor(2.4 * SEG), 300);
  const switchLsn = b.end;
  b.tli = tailTli;
  b.fill(Math.floor(3.3 * SEG), tailBody);
  return { bytes: b.bytes(Number(b.end - b.start)), start: b.start, switchLsn, end: b.end };
}

async function push(tl: Timeline, tli: number, term: bigint, w: { bytes: Uint8Array; start: Lsn }, from: Lsn, to: Lsn): Promise<Lsn> {
  await tl.quiesce();
  const s = tl.acceptor.newSession();
  const greeting = s.greet(server(tli), await tl.scanWalEnd(SEG));
  if (!s.vote({ nodeId: id(term), vcl: greeting.flushLsn, epoch: term }).granted) throw new Error('vote refused');
  for (let pos = from; pos < to; ) {
    const end = pos + 100_000n < to ? pos + 100_000n : to;
    s.append({ senderId: id(term), beginLsn: pos, endLsn: end, commitLsn: end, restartLsn: 0n, wal: w.bytes.subarray(Number(pos - w.start), Number(end - w.start)) });
    pos = end;
  }
  tl.requestSync(to);
  await tl.quiesce();
  return greeting.flushLsn;
}

const files = (dir: string) => readdirSync(dir).filter((f) => /^[0-9A-F]{24}/.test(f)).sort();
const name = (tli: number, segno: bigint) => segmentFileName(tli, segno, SEG);

t.test('move, restart scan, and truncation across the switch', async (t) => {
  const root = tempDir(t, 'wk-move-');
  const old = wal(1, 500);
  const next = wal(2, 700);
  const X = old.switchLsn;
  t.equal(next.switchLsn, X, 'both timelines share the WAL before the switch');
  const S = segmentNumber(X, SEG);
  t.ok(segmentOffset(X, SEG) > 0, `switch point ${formatLsn(X)} inside segment ${S}`);

  const tl = new Timeline({ root, key: KEY, noSync: true, log: silentLogger() });
  await tl.load();
  await push(tl, 1, 1n, old, old.start, old.end);
  const dir = tl.dir;
  t.same(files(dir), [name(1, 1n), name(1, 2n), name(1, 3n), name(1, 4n) + '.partial']);

  // Refused greetings change nothing: no history yet.
  const before = files(dir);
  t.throws(() => tl.acceptor.newSession().greet(server(2), old.end), { code: 'pg-timeline-mismatch', message: /no history stored for PostgreSQL timeline 2/ });
  t.same(files(dir), before);

  tl.putHistory(2, Buffer.from(`1\t${formatLsn(X)}\tno recovery target specified\n`));
  const flushAtMove = await push(tl, 2, 2n, next, X, next.end);
  t.equal(flushAtMove, X, 'the greeting reported flush_lsn at the switch point');
  t.equal(tl.acceptor.state.server.timeline, 2);
  t.same(files(dir), [name(1, 1n), name(1, 2n), name(1, 3n) + '.partial', name(2, 3n), name(2, 4n) + '.partial'], "the parent's switch segment stays .partial; later ones are gone");
  const parent = readFileSync(join(dir, name(1, 3n) + '.partial'));
  const child = readFileSync(join(dir, name(2, 3n)));
  const cut = segmentOffset(X, SEG);
  t.ok(child.subarray(0, cut).equals(parent.subarray(0, cut)), "the new timeline's first segment starts with the parent's bytes");
  t.ok(parent.subarray(cut).every((b) => b === 0), "the parent's file is zero past the switch point");
  t.ok(child.equals(Buffer.from(next.bytes.subarray(Number(BigInt(3 * SEG) - next.start), Number(BigInt(4 * SEG) - next.start)))), 'the new segment holds the new timeline\'s WAL');

  // A restart: the end-of-WAL scan reads timeline 1's segments, then timeline 2's.
  await tl.close();
  writeFileSync(join(dir, '00000003.history.tmp'), 'a history write a crash interrupted');
  const again = new Timeline({ root, key: KEY, noSync: true, log: silentLogger() });
  t.equal(await again.load(), next.end, 'end of WAL found across the switch');
  t.notOk(existsSync(join(dir, '00000003.history.tmp')), 'the leftover of an interrupted history write is removed at load');
  t.equal(again.acceptor.state.server.timeline, 2);
  t.same(files(dir), [name(1, 1n), name(1, 2n), name(1, 3n) + '.partial', name(2, 3n), name(2, 4n) + '.partial'], 'load renames nothing of the parent');

  // The old primary is refused after the move, naming the switch point.
  t.throws(() => again.acceptor.newSession().greet(server(1), next.end), {
    code: 'pg-timeline-mismatch',
    message: `the proposer's primary is on PostgreSQL timeline 1, but this timeline holds WAL of PostgreSQL timeline 2, which forked from timeline 1 at ${formatLsn(X)}`,
  });

  // A newer leader rewriting from inside segment 2 removes the later segments of both timelines.
  const at = BigInt(2 * SEG) + 4096n;
  const s = again.acceptor.newSession();
  s.greet(server(2), next.end);
  s.vote({ nodeId: id(3n), vcl: at, epoch: 3n });
  s.append({ senderId: id(3n), beginLsn: at, endLsn: at + 8n, commitLsn: 0n, restartLsn: 0n, wal: next.bytes.subarray(Number(at - next.start), Number(at - next.start) + 8) });
  t.same(files(dir), [name(1, 1n), name(1, 2n) + '.partial'], 'segment 2 cut back to .partial, 3 and 4 of every timeline removed');
  await again.close();
});

t.test('a move that skips a timeline (1 → 3 through 2) writes each segment into the file its timeline owns', async (t) => {
  const root = tempDir(t, 'wk-move2-');
  const old = wal(1, 500);
  const b = new WalBuilder({ segSize: SEG, start: BigInt(SEG) });
  b.fill(Math.floor(2.4 * SEG), 300);
  const X = b.end;
  b.tli = 2;
  b.fill(Math.floor(3.5 * SEG), 410);
  const Y = b.end;
  b.tli = 3;
  b.fill(Math.floor(4.3 * SEG), 620);
  const next = { bytes: b.bytes(Number(b.end - b.start)), start: b.start, end: b.end };
  t.equal(X, old.switchLsn);
  t.same([segmentNumber(X, SEG), segmentNumber(Y, SEG)], [3n, 4n]);

  const tl = new Timeline({ root, key: KEY, noSync: true, log: silentLogger() });
  await tl.load();
  await push(tl, 1, 1n, old, old.start, old.end);
  tl.putHistory(3, Buffer.from(`1\t${formatLsn(X)}\tno recovery target specified\n2\t${formatLsn(Y)}\tno recovery target specified\n`));
  t.equal(await push(tl, 3, 2n, next, X, next.end), X);
  t.same(files(tl.dir), [name(1, 1n), name(1, 2n), name(1, 3n) + '.partial', name(2, 3n), name(3, 4n), name(3, 5n) + '.partial']);
  const cut = segmentOffset(X, SEG);
  t.ok(readFileSync(join(tl.dir, name(2, 3n))).subarray(0, cut).equals(readFileSync(join(tl.dir, name(1, 3n) + '.partial')).subarray(0, cut)), "timeline 2's segment starts with timeline 1's bytes");
  await tl.close();
  const again = new Timeline({ root, key: KEY, noSync: true, log: silentLogger() });
  t.equal(await again.load(), next.end, 'end of WAL found across both switches');
  await again.close();
});
