// Segment files: zero-filled creation, .partial until full, writes across
// segment boundaries, rename after sync, durable truncation.
import t, { type Test } from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { segmentFileName } from '../../src/lsn.js';
import { splitBySegment, WalSegments } from '../../src/storage/segments.js';
import { tempDir } from '../helpers/support.js';

const SEG = 1 << 20;
const name = (segno: number) => segmentFileName(1, BigInt(segno), SEG);

/** A 1.5 MiB tmpfs (room for one 1 MiB segment); null (test skipped) where mounting is not allowed. */
function smallDisk(t: Test): string | null {
  const dir = tempDir(t, 'wk-seg-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1536k', 'tmpfs', dir]);
  if (r.status !== 0) {
    t.comment(`skipped: cannot mount a tmpfs here: ${r.stderr.toString().trim()}`);
    return null;
  }
  t.teardown(() => {
    spawnSync('umount', [dir]);
  });
  return dir;
}

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

t.test('splitBySegment', async (t) => {
  t.same(splitBySegment(BigInt(SEG - 10), 30, SEG), [
    { segno: 0n, offset: SEG - 10, from: 0, length: 10 },
    { segno: 1n, offset: 0, from: 10, length: 20 },
  ]);
  t.same(splitBySegment(0n, 0, SEG), []);
  t.equal(splitBySegment(5n, 3 * SEG, SEG).length, 4);
});

t.test('a write creates a zero-filled .partial segment; sync renames full segments', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  const start = BigInt(SEG) + BigInt(SEG - 100);
  const data = pattern(300, 7);
  w.write(start, data); // crosses from segment 1 into segment 2
  t.same(readdirSync(dir).sort(), [name(1) + '.partial', name(2) + '.partial']);
  for (const f of readdirSync(dir)) t.equal(statSync(join(dir, f)).size, SEG, `${f} is preallocated`);
  const s1 = readFileSync(join(dir, name(1) + '.partial'));
  t.ok(s1.subarray(0, SEG - 100).every((b) => b === 0), 'zeros before the write');
  t.same(s1.subarray(SEG - 100), data.subarray(0, 100));
  const s2 = readFileSync(join(dir, name(2) + '.partial'));
  t.same(s2.subarray(0, 200), data.subarray(100));
  t.ok(s2.subarray(200).every((b) => b === 0), 'zeros after the write');
  t.ok(w.needsSync);
  await w.sync();
  t.same(readdirSync(dir).sort(), [name(1), name(2) + '.partial'], 'segment 1 reached its last byte: renamed after the sync');
  t.notOk(w.needsSync);
  w.close();
});

t.test('a blocking sync while a background one runs takes over its segments: both finish, each name changes once', async (t) => {
  const dir = tempDir(t);
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  w.write(BigInt(SEG - 10), pattern(20, 5)); // completes segment 0, starts segment 1
  const background = w.sync();
  w.syncNow();
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial'], 'the blocking sync flushed and renamed the completed segment itself');
  await background;
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial']);
  t.notOk(w.needsSync, 'nothing left to sync');
  w.close();
});

t.test('writes in many pieces equal the source; a reopened store continues in place', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  const src = pattern(3 * SEG + 12345, 99);
  const base = BigInt(SEG) * 5n;
  let w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  let pos = 0;
  let i = 0;
  while (pos < src.length) {
    const n = Math.min(src.length - pos, 1 + ((i * 7919) % 131072));
    w.write(base + BigInt(pos), src.subarray(pos, pos + n));
    pos += n;
    if (++i % 5 === 0) await w.sync();
    if (i === 40) {
      await w.sync();
      w.close();
      w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
    }
  }
  await w.sync();
  w.close();
  const files = readdirSync(dir).sort();
  t.same(files, [name(5), name(6), name(7), name(8) + '.partial']);
  const all = Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
  t.same(all.subarray(0, src.length), src);
});

t.test('truncate zeroes the rest of the segment, removes later ones, and reopens a full segment as .partial', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  const src = pattern(3 * SEG, 3);
  w.write(0n, src);
  await w.sync();
  t.same(readdirSync(dir).sort(), [name(0), name(1), name(2)]);
  const cut = BigInt(SEG + 5000);
  w.truncate(cut);
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial']);
  const s1 = readFileSync(join(dir, name(1) + '.partial'));
  t.same(s1.subarray(0, 5000), src.subarray(SEG, SEG + 5000));
  t.ok(s1.subarray(5000).every((b) => b === 0), 'zeroed after the cut');
  // Writing again continues from the cut.
  w.write(cut, Buffer.from('abc'));
  await w.sync();
  t.same(readFileSync(join(dir, name(1) + '.partial')).subarray(5000, 5003), Buffer.from('abc'));
  // A cut at a segment start removes that segment.
  w.truncate(BigInt(SEG));
  t.same(readdirSync(dir).sort(), [name(0)]);
  w.truncate(0n);
  t.same(readdirSync(dir), []);
  w.close();
});

t.test('leftover temp files are removed and short files are extended', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  writeFileSync(join(dir, name(3) + '.partial.tmp'), 'junk');
  writeFileSync(join(dir, name(4) + '.partial'), Buffer.from('xyz'));
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  t.notOk(existsSync(join(dir, name(3) + '.partial.tmp')));
  w.write(BigInt(4 * SEG + 10), Buffer.from('q'));
  await w.sync();
  const f = readFileSync(join(dir, name(4) + '.partial'));
  t.equal(f.length, SEG);
  t.same(f.subarray(0, 3), Buffer.from('xyz'));
  t.equal(f[10], 0x71);
  w.close();
});

t.test('syncNow makes writes durable and renames synchronously', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  w.write(0n, pattern(SEG + 1, 5));
  w.syncNow();
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial']);
  t.notOk(w.needsSync);
  w.close();
});

t.test('a full disk is an error from write(), and no temp file is left behind', async (t) => {
  const dir = smallDisk(t);
  if (!dir) return;
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1 });
  w.write(0n, pattern(1000, 1));
  await w.sync();
  let err: NodeJS.ErrnoException | null = null;
  try {
    w.write(BigInt(SEG - 10), pattern(100, 2)); // needs a second 1 MiB segment: does not fit
  } catch (e) {
    err = e as NodeJS.ErrnoException;
  }
  t.equal(err?.code, 'ENOSPC', 'ENOSPC surfaces from write()');
  t.same(readdirSync(dir).sort(), [name(0) + '.partial'], 'the failed segment creation left no file');
  t.same(readFileSync(join(dir, name(0) + '.partial')).subarray(0, 1000), pattern(1000, 1), 'earlier WAL intact');
  w.close();
});

t.test('preallocation: the next segment is made in the background and renamed into place when the WAL reaches it', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  writeFileSync(join(dir, 'prealloc.' + name(9)), 'crash leftover');
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1, preallocate: true });
  t.notOk(existsSync(join(dir, 'prealloc.' + name(9))), 'a leftover preallocation is removed on open');
  const data = pattern(SEG + 500, 11);
  w.write(0n, data.subarray(0, 1000));
  await w.settled();
  t.equal(statSync(join(dir, 'prealloc.' + name(1))).size, SEG, 'opening segment 0 made segment 1 ahead, to full size');
  t.same(w.preallocStats, { made: 1, used: 0, missed: 0 });
  // Only segment-named files count as WAL.
  t.same(w.listFiles().map((f) => f.file), [name(0) + '.partial']);
  w.write(1000n, data.subarray(1000));
  t.same(w.preallocStats.used, 1, 'segment 1 came from the preallocation');
  t.notOk(existsSync(join(dir, 'prealloc.' + name(1))));
  t.ok(w.needsSync, 'the rename is not durable until the next sync');
  await w.sync();
  await w.settled();
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial', 'prealloc.' + name(2)]);
  const s1 = readFileSync(join(dir, name(1) + '.partial'));
  t.same(s1.subarray(0, 500), data.subarray(SEG), 'WAL in the preallocated segment');
  t.ok(s1.subarray(500).every((b) => b === 0), 'zeros after it');
  w.close();
  await w.settled();
  t.same(readdirSync(dir).sort(), [name(0), name(1) + '.partial'], 'close() removes an unused preallocation');
});

t.test('preallocation not ready in time: the segment is created synchronously and the late one is discarded', async (t) => {
  const dir = tempDir(t, 'wk-seg-');
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1, preallocate: true });
  // Segment 1 is needed in the same turn that started making it.
  w.write(BigInt(SEG - 10), pattern(20, 3));
  t.equal(w.preallocStats.missed, 1);
  await w.sync();
  await w.settled();
  const files = readdirSync(dir).sort();
  t.same(files.filter((f) => !f.startsWith('prealloc.')), [name(0), name(1) + '.partial']);
  t.ok(files.every((f) => !f.startsWith('prealloc.') || f === 'prealloc.' + name(2)), 'only the next one is being made');
  const s1 = readFileSync(join(dir, name(1) + '.partial'));
  t.same(s1.subarray(0, 10), pattern(20, 3).subarray(10));
  w.close();
  await w.settled();
  t.notOk(readdirSync(dir).some((f) => f.startsWith('prealloc.')), 'nothing left after close');
});

t.test('preallocation that fails (full disk) is reported and the synchronous path decides', async (t) => {
  const dir = smallDisk(t);
  if (!dir) return;
  const errors: string[] = [];
  const w = new WalSegments({ dir, walSegSize: SEG, timeline: 1, preallocate: true, onPreallocError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message) });
  w.write(0n, pattern(1000, 1));
  await w.sync();
  await w.settled();
  t.same(errors, ['ENOSPC'], 'the failed preallocation is reported');
  t.same(readdirSync(dir).sort(), [name(0) + '.partial'], 'and leaves no file');
  t.throws(() => w.write(BigInt(SEG - 10), pattern(100, 2)), { code: 'ENOSPC' }, 'the segment creation itself still fails clearly');
  t.same(readFileSync(join(dir, name(0) + '.partial')).subarray(0, 1000), pattern(1000, 1), 'earlier WAL intact');
  w.close();
  await w.settled();
});
