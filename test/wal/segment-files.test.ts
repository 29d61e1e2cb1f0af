// The one rule for reading a segment directory: a `.partial` is read instead
// of the full file of the same segment, by every reader.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { segmentFileName } from '../../src/lsn.js';
import { listSegmentFiles, preferredSegmentFile, segmentFileNamesToTry, segmentFilesToRead } from '../../src/wal/segment-files.js';
import { openWalDir } from '../../src/wal/segments.js';
import { readSegmentFile } from '../../src/replication/file-source.js';

const SEG = 1 << 20;
const name = (segno: number, tli = 1) => segmentFileName(tli, BigInt(segno), SEG);

t.test('preferredSegmentFile: the .partial wins, in either order; otherwise the first stays', async (t) => {
  const full = { file: 'full', partial: false };
  const partial = { file: 'partial', partial: true };
  t.equal(preferredSegmentFile(full, partial), partial);
  t.equal(preferredSegmentFile(partial, full), partial);
  const other = { file: 'other', partial: false };
  t.equal(preferredSegmentFile(full, other), full, 'two full files: the first seen');
});

t.test('segmentFilesToRead: one file per segment, in the order segments were first seen', async (t) => {
  const files = [
    { segno: 1n, partial: false },
    { segno: 2n, partial: false },
    { segno: 2n, partial: true },
    { segno: 3n, partial: true },
    { segno: 3n, partial: false },
  ];
  const chosen = segmentFilesToRead(files, (f) => f.segno);
  t.same([...chosen.keys()], [1n, 2n, 3n]);
  t.same([...chosen.values()].map((f) => f.partial), [false, true, true]);
});

t.test('segmentFileNamesToTry: .partial, the full name, then .partial again', async (t) => {
  t.same(segmentFileNamesToTry(name(5)), [name(5) + '.partial', name(5), name(5) + '.partial']);
});

t.test('listSegmentFiles parses segment names and ignores everything else', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wk-segfiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of [name(1), name(2) + '.partial', name(3, 2), 'safekeeper.control', name(4) + '.partial.tmp', 'prealloc.' + name(5)]) writeFileSync(join(dir, f), '');
  const found = listSegmentFiles(dir, SEG).sort((a, b) => (a.file < b.file ? -1 : 1));
  t.same(found, [
    { file: name(1), segno: 1n, partial: false, timeline: 1 },
    { file: name(2) + '.partial', segno: 2n, partial: true, timeline: 1 },
    { file: name(3, 2), segno: 3n, partial: false, timeline: 2 },
  ]);
});

t.test('the directory reader and the walsender file reader pick the same file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wk-segfiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, name(1)), Buffer.alloc(SEG, 0xaa));
  writeFileSync(join(dir, name(1) + '.partial'), Buffer.alloc(SEG, 0xbb));
  writeFileSync(join(dir, name(2)), Buffer.alloc(SEG, 0xcc));
  const set = await openWalDir(dir, { walSegSize: SEG });
  t.equal(set.fileFor(1n)?.name, name(1) + '.partial', 'openWalDir reads the .partial');
  t.equal(set.fileFor(2n)?.name, name(2), 'a segment with only a full file reads that');
  const buf = new Uint8Array(4);
  await readSegmentFile(dir, SEG, [1], BigInt(SEG), buf);
  t.same([...buf], [0xbb, 0xbb, 0xbb, 0xbb], 'readSegmentFile reads the .partial');
});
