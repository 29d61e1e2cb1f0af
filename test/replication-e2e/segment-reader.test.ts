// The per-stream reader of a daemon timeline (SegmentFileReader through
// TimelineWalSource.openReader()): it keeps segment files open between
// reads, survives the `.partial` → full rename, and forgets its files when
// the timeline truncates WAL, so that a stream never serves bytes from a
// file that a new leader removed and wrote again.
import t, { type Test } from 'tap';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { segmentFileName, type Lsn } from '../../src/lsn.js';
import { SAFEKEEPER_MAGIC } from '../../src/protocol/layout.js';
import type { SafeKeeperInfo } from '../../src/protocol/types.js';
import { TimelineWalSource, type ServedTimeline } from '../../src/replication/daemon.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { SegmentFileReader } from '../../src/replication/file-source.js';
import { WalSegmentMissingError } from '../../src/replication/source.js';
import { noHsFeedback } from '../../src/acceptor/state.js';

const SEG = 1 << 20;

function dir(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'wk-segreader-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const filled = (byte: number): Buffer => Buffer.alloc(SEG, byte);
const seg = (n: number): string => segmentFileName(1, BigInt(n), SEG);
const at = (n: number, off = 0): Lsn => BigInt(n * SEG + off);

async function readByte(r: { read(lsn: Lsn, buf: Uint8Array): number | Promise<number> }, lsn: Lsn): Promise<number> {
  const b = Buffer.alloc(16);
  const n = await r.read(lsn, b);
  if (n !== 16) throw new Error(`read ${n} bytes`);
  return b[0];
}

t.test('keeps its files open, follows a rename, and reads afresh after invalidate()', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, seg(1) + '.partial'), filled(1));
  const r = new SegmentFileReader(d, () => SEG, () => [1]);
  t.teardown(() => r.close());
  t.equal(await readByte(r, at(1, 100)), 1);

  // The segment completes: renamed, same file.
  renameSync(join(d, seg(1) + '.partial'), join(d, seg(1)));
  t.equal(await readByte(r, at(1, 200)), 1, 'the open file is still the segment after its rename');

  // Removed and written again (what a truncation by a new leader does to a later segment).
  unlinkSync(join(d, seg(1)));
  writeFileSync(join(d, seg(1) + '.partial'), filled(2));
  t.equal(await readByte(r, at(1, 300)), 1, 'without invalidate() the reader would still see the old file');
  const gen = r.generation;
  r.invalidate();
  t.equal(r.generation, gen + 1, 'invalidate() starts a new generation');
  t.equal(await readByte(r, at(1, 300)), 2, 'after invalidate() it opens the new file');

  unlinkSync(join(d, seg(1) + '.partial'));
  r.invalidate();
  await t.rejects(r.read(at(1), Buffer.alloc(8)), WalSegmentMissingError, 'a missing segment is reported as removed');
  t.ok(r.stats.syncReads >= 4, 'reads from the page cache are synchronous');
});

t.test('at most two files open; reads stop at the segment end; usable after close()', async (t) => {
  const d = dir(t);
  for (const n of [1, 2, 3]) writeFileSync(join(d, seg(n)), filled(n));
  const r = new SegmentFileReader(d, () => SEG, () => [1]);
  const buf = Buffer.alloc(4096);
  t.equal(await r.read(at(1, SEG - 100), buf), 100, 'a read ends at the end of its segment');
  for (const n of [1, 2, 3]) t.equal(await readByte(r, at(n, 10)), n);
  // Segment 1 was closed when 3 was opened: replacing it is seen without invalidate().
  unlinkSync(join(d, seg(1)));
  writeFileSync(join(d, seg(1)), filled(9));
  t.equal(await readByte(r, at(1, 10)), 9, 'the oldest file was closed');
  r.close();
  t.equal(await readByte(r, at(2, 10)), 2, 'after close() reads open and close the file each time');
});

t.test('TimelineWalSource: a truncation invalidates the readers of every stream', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, seg(1) + '.partial'), filled(1));
  const listeners: Parameters<ServedTimeline['subscribe']>[0][] = [];
  const state = {
    magic: SAFEKEEPER_MAGIC,
    formatVersion: 2,
    epoch: 1n,
    server: { protocolVersion: 1, pgVersion: 150018, nodeId: { term: 1n, uuid: new Uint8Array(16) }, systemId: 1n, timelineId: new Uint8Array(16), walEnd: 0n, timeline: 1, walSegSize: SEG, tenantId: new Uint8Array(16) },
    commitLsn: at(2),
    flushLsn: at(2),
    restartLsn: 0n,
  } satisfies SafeKeeperInfo;
  const tl: ServedTimeline = {
    name: 'test',
    dir: d,
    commitLsn: at(2),
    syncedLsn: at(2),
    storedState: state,
    ancestry: new TimelineAncestry(1),
    historyFile: () => null,
    hsFeedback: noHsFeedback(),
    subscribe(l) {
      listeners.push(l);
      return () => {};
    },
  };
  const source = new TimelineWalSource(tl);
  const a = source.openReader();
  const b = source.openReader();
  t.equal(await readByte(a, at(1, 5)), 1);
  t.equal(await readByte(b, at(1, 5)), 1);
  unlinkSync(join(d, seg(1) + '.partial'));
  writeFileSync(join(d, seg(1) + '.partial'), filled(7));
  for (const l of listeners) l.truncated(at(1));
  t.equal(await readByte(a, at(1, 5)), 7, 'stream a reads the rewritten segment');
  t.equal(await readByte(b, at(1, 5)), 7, 'stream b too');
  a.close();
  b.close();
});

t.test('one slow synchronous read is not a disk wait; two in a row switch to thread-pool reads for a while', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, seg(1)), filled(7));
  // A clock each read asks twice (before and after): a read is "slow" when the second answer is 20 ms on.
  const slow = new Set<number>();
  let calls = 0;
  let now = 0;
  const clock = (): number => {
    calls++;
    if (calls % 2 === 0 && slow.has(calls / 2)) now += 20;
    return now;
  };
  const r = new SegmentFileReader(d, () => SEG, () => [1], undefined, 2, clock);
  t.teardown(() => r.close());
  const readN = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) t.equal(await readByte(r, at(1, i * 16)), 7);
  };
  // Sync read number k (1-based) is slow when k is in `slow`.
  slow.add(2);
  await readN(4);
  t.same(r.stats, { syncReads: 4, asyncReads: 0, slowSyncReads: 1 }, 'a lone slow read (preemption) keeps reads synchronous');
  slow.add(6).add(7);
  await readN(3);
  t.same(r.stats, { syncReads: 7, asyncReads: 0, slowSyncReads: 3 }, 'the second slow read in a row');
  await readN(64);
  t.same(r.stats, { syncReads: 7, asyncReads: 64, slowSyncReads: 3 }, 'then 64 reads through the thread pool');
  await readN(1);
  t.same(r.stats, { syncReads: 8, asyncReads: 64, slowSyncReads: 3 }, 'then synchronous again');
});
