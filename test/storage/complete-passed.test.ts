// A segment the WAL has wholly passed but that is still named .partial (the
// process died between its last byte and the rename) gets its complete name
// at load, so readers and the archive, which take complete segments, go on.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { segmentFileName, segmentStart } from '../../src/lsn.js';
import { completePassedSegments } from '../../src/storage/leftover-wal.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { tempDir } from '../helpers/support.js';

const SEG = 1 << 20;
const name = (segno: bigint) => segmentFileName(1, segno, SEG);
const FIRST = new TimelineAncestry(1);

function layout(t: { teardown(fn: () => unknown): void }, files: string[]): string {
  const dir = tempDir(t, 'wk-complete-');
  for (const f of files) writeFileSync(join(dir, f), Buffer.alloc(SEG));
  return dir;
}

t.test('renames .partial segments wholly below the end of WAL, and only those', async (t) => {
  const files = [name(1n), `${name(2n)}.partial`, `${name(3n)}.partial`];
  for (const [end, want] of [
    [segmentStart(3n, SEG) + 100n, [name(2n)]],
    [segmentStart(3n, SEG), [name(2n)]],
    [segmentStart(3n, SEG) - 1n, []],
    [segmentStart(4n, SEG), [name(2n), name(3n)]],
  ] as const) {
    const dir = layout(t, files);
    t.same(completePassedSegments(dir, FIRST, SEG, end, true), want, `end of WAL at ${end.toString(16)}`);
    const listed = readdirSync(dir).sort();
    for (const n of want) t.ok(listed.includes(n) && !listed.includes(`${n}.partial`), `${n} renamed`);
  }
});

t.test('where both names exist, the .partial (the file read) replaces the complete one', async (t) => {
  const dir = layout(t, [name(1n), `${name(1n)}.partial`, `${name(2n)}.partial`]);
  writeFileSync(join(dir, `${name(1n)}.partial`), Buffer.alloc(SEG, 7));
  t.same(completePassedSegments(dir, FIRST, SEG, segmentStart(2n, SEG) + 10n, true), [name(1n)]);
  t.same(readdirSync(dir).sort(), [name(1n), `${name(2n)}.partial`].sort());
  t.equal(readFileSync(join(dir, name(1n)))[0], 7, 'the bytes are those of the .partial');
});

t.test("a parent timeline's file of the switch segment stays .partial", async (t) => {
  const child = (segno: bigint) => segmentFileName(2, segno, SEG);
  const dir = layout(t, [name(1n), `${name(2n)}.partial`, `${child(2n)}.partial`, `${child(3n)}.partial`]);
  const ancestry = new TimelineAncestry(2, [{ timeline: 1, switchpoint: segmentStart(2n, SEG) + 4096n }]);
  t.same(completePassedSegments(dir, ancestry, SEG, segmentStart(3n, SEG) + 8n, true), [child(2n)]);
  t.same(readdirSync(dir).sort(), [name(1n), `${name(2n)}.partial`, child(2n), `${child(3n)}.partial`].sort());
});
