// The end-of-WAL scan of a safekeeper timeline directory: it starts at the
// segment of the stored commit position only when every segment before it
// is there and complete (read from a full file, not a .partial).
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { segmentFileName } from '../../src/lsn.js';
import { findTimelineWalEnd } from '../../src/wal/resume-scan.js';
import { WalBuilder } from './synth.js';

const SEG = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'wk-resume-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

const w = new WalBuilder({ start: BigInt(SEG), tli: 1 });
w.fill(2 * SEG + SEG / 2, 500);
const bytes = w.bytes(3 * SEG);
const seg = (i: number) => bytes.subarray((i - 1) * SEG, i * SEG);

/** A directory with segments 1-3 (`partial` names get `.partial`, `extra` files are added as well). */
function dir(partial: number[] = [], extra: Record<string, Uint8Array> = {}): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  for (const i of [1, 2, 3]) writeFileSync(join(d, segmentFileName(1, BigInt(i), SEG) + (partial.includes(i) ? '.partial' : '')), seg(i));
  for (const [name, data] of Object.entries(extra)) writeFileSync(join(d, name), data);
  return d;
}

const commitLsn = BigInt(3 * SEG + 100);

t.test('every segment before the commit position complete: the scan starts at its segment', async (t) => {
  const r = await findTimelineWalEnd(dir(), { walSegSize: SEG, timeline: 1, commitLsn });
  t.equal(r?.startLsn, BigInt(3 * SEG));
  t.equal(r?.segmentsScanned, 1);
  t.equal(r?.endLsn, w.end);
});

t.test('a .partial before the commit position (alone or beside the full file): the scan starts at the lowest segment', async (t) => {
  for (const d of [dir([2]), dir([], { [segmentFileName(1, 2n, SEG) + '.partial']: seg(2) })]) {
    const r = await findTimelineWalEnd(d, { walSegSize: SEG, timeline: 1, commitLsn });
    t.equal(r?.startLsn, BigInt(SEG));
    t.equal(r?.segmentsScanned, 3);
    t.equal(r?.endLsn, w.end);
  }
});

t.test('no commit position: from the lowest segment; no segment of the timeline: null', async (t) => {
  const d = dir();
  t.equal((await findTimelineWalEnd(d, { walSegSize: SEG, timeline: 1, commitLsn: 0n }))?.startLsn, BigInt(SEG));
  t.equal(await findTimelineWalEnd(d, { walSegSize: SEG, timeline: 2, commitLsn }), null);
});
