// findWalEnd over directories built from synthetic segments: which files it
// reads (.partial preferred, timeline choice), where it starts, and the
// errors it gives for bad input. Also the `walkeeper wal-end` CLI: output,
// exit codes, and exactly one stderr line for every kind of bad input.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, segmentFileName } from '../../src/lsn.js';
import { projectRoot } from '../../src/hot/wasm.js';
import { findWalEnd } from '../../src/wal/wal-end.js';
import { walkRecords } from '../../src/wal/walk.js';
import { WalBuilder } from './synth.js';

const SEG = 1 << 20;
const root = mkdtempSync(join(tmpdir(), 'wk-waldir-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const newDir = (): string => {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
};

/** Three segments of synthetic WAL (segments 1–3, timeline `tli`), the last one half full. */
function buildWal(tli = 1): { w: WalBuilder; segs: Uint8Array[] } {
  const w = new WalBuilder({ start: BigInt(SEG), tli });
  w.fill(2 * SEG + SEG / 2, 500);
  const bytes = w.bytes(3 * SEG);
  return { w, segs: [0, 1, 2].map((i) => bytes.subarray(i * SEG, (i + 1) * SEG)) };
}

function writeSegs(dir: string, segs: Uint8Array[], tli = 1, firstSegno = 1n, suffix = (_i: number) => ''): string[] {
  return segs.map((s, i) => {
    const name = segmentFileName(tli, firstSegno + BigInt(i), SEG) + suffix(i);
    writeFileSync(join(dir, name), s);
    return name;
  });
}

const { w, segs } = buildWal();

t.test('finds the end across segments; reports names and the last record', async (t) => {
  const dir = newDir();
  writeSegs(dir, segs);
  const r = await findWalEnd(dir);
  t.equal(r.endLsn, w.end);
  t.equal(r.lastRecordLsn, w.lastRecord);
  t.equal(r.walSegSize, SEG);
  t.equal(r.timeline, 1);
  t.equal(r.segmentName, '000000010000000000000003');
  t.equal(r.stopReason, 'zero-length');
  t.equal(r.recordCount, w.records.length);
  t.equal(r.segmentsScanned, 3);
  // resume from a known record with its predecessor, or from a later segment start
  const i = w.records.length - 10;
  const resumed = await findWalEnd(dir, { startLsn: w.records[i], prevLsn: w.records[i - 1] });
  t.equal(resumed.endLsn, w.end);
  t.equal(resumed.recordCount, 10);
  const fromSeg3 = await findWalEnd(dir, { startLsn: BigInt(3 * SEG) });
  t.equal(fromSeg3.endLsn, w.end);
  t.equal(fromSeg3.segmentsScanned, 1);
});

t.test('.partial is preferred over the full file; an empty .partial ends the WAL at its start', async (t) => {
  const dir = newDir();
  writeSegs(dir, segs);
  // the .partial holds less WAL than the full file of the same segment
  const cut = segs[2].slice();
  cut.fill(0, SEG / 4);
  writeFileSync(join(dir, '000000010000000000000003.partial'), cut);
  const r = await findWalEnd(dir);
  t.ok(r.endLsn < w.end && r.endLsn > BigInt(3 * SEG), `the .partial was read (end ${formatLsn(r.endLsn)})`);
  const empty = newDir();
  writeSegs(empty, segs.slice(0, 2));
  writeFileSync(join(empty, '000000010000000000000003.partial'), '');
  const e = await findWalEnd(empty);
  t.equal(e.stopReason, 'incomplete');
  const only = newDir();
  writeFileSync(join(only, '000000010000000000000003.partial'), '');
  await t.rejects(findWalEnd(only), /every segment file of timeline 1 .* is empty/);
  const withSize = await findWalEnd(only, { walSegSize: SEG });
  t.equal(withSize.endLsn, BigInt(3 * SEG), 'with the size given: the end is the segment start');
  t.equal(withSize.lastRecordLsn, null);
});

t.test('timelines: the highest by default, or the one asked for', async (t) => {
  const dir = newDir();
  writeSegs(dir, segs, 1);
  const two = buildWal(2);
  writeSegs(dir, two.segs.slice(0, 2), 2);
  const r = await findWalEnd(dir);
  t.equal(r.timeline, 2);
  t.equal(r.segmentName.slice(0, 8), '00000002');
  t.equal((await findWalEnd(dir, { timeline: 1 })).endLsn, w.end);
  await t.rejects(findWalEnd(dir, { timeline: 3 }), /no WAL segment files of timeline 3/);
});

t.test('bad input throws WalDirError naming what is wrong', async (t) => {
  await t.rejects(findWalEnd(join(root, 'missing')), { name: 'WalDirError', code: 'not-found' });
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  await t.rejects(findWalEnd(file), { code: 'not-a-directory' });
  await t.rejects(findWalEnd(newDir()), { code: 'no-segments' });
  const short = newDir();
  writeSegs(short, [segs[0], segs[1].subarray(0, 5000)]);
  await t.rejects(findWalEnd(short), { message: `segment file "${join(short, '000000010000000000000002')}" has 5000 bytes, expected ${SEG}`, code: 'bad-size' });
  const dir = newDir();
  writeSegs(dir, segs);
  await t.rejects(findWalEnd(dir, { walSegSize: 3000 }), { code: 'bad-option' });
  // a name that cannot exist with 1 GiB segments (only 4 per log id)
  writeFileSync(join(dir, '000000010000000000000010'), '');
  await t.rejects(findWalEnd(dir, { walSegSize: 1 << 30 }), { code: 'bad-name' });
  const garbage = newDir();
  writeFileSync(join(garbage, '000000010000000000000001'), Buffer.alloc(SEG, 0x55));
  await t.rejects(findWalEnd(garbage), /cannot read the segment size/);
});

t.test('walkRecords: limit, paging and records before the start', async (t) => {
  const dir = newDir();
  writeSegs(dir, segs);
  const all = await walkRecords(dir, { limit: 100_000 });
  t.same(
    all.records.map((r) => r.lsn),
    w.records,
  );
  t.equal(all.limited, false);
  t.equal(all.nextLsn, w.end);
  t.equal(all.stopReason, 'zero-length');
  const mid = w.records[700];
  const some = await walkRecords(dir, { startLsn: mid - (mid % 8192n), limit: 5 });
  t.ok(some.records[0].lsn >= mid - (mid % 8192n));
  const exact = await walkRecords(dir, { startLsn: mid, limit: 1500 });
  t.equal(exact.records[0].lsn, mid, 'an unaligned start must be a record start');
  t.equal(exact.records.length, 1500);
  t.equal(exact.limited, true);
  t.equal(exact.nextLsn, w.records[2200]);
  await t.rejects(walkRecords(dir, { startLsn: mid + 4n }), /not 8-byte aligned/);
});

const bin = join(projectRoot(), 'bin', 'walkeeper.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [bin, 'wal-end', ...args], { encoding: 'utf8' });

t.test('CLI: prints the end, text and JSON', async (t) => {
  const dir = newDir();
  writeSegs(dir, segs);
  const r = cli(dir);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, `end_lsn=${formatLsn(w.end)} timeline=1 segment=000000010000000000000003\n`);
  t.equal(r.stderr, '');
  const j = cli('--json', dir, '--wal-seg-size', String(SEG), '--timeline=1');
  t.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  t.match(out, { end_lsn: formatLsn(w.end), timeline: 1, segment: '000000010000000000000003', wal_seg_size: SEG, last_record_lsn: formatLsn(w.lastRecord), stop_reason: 'zero-length' });
  const help = cli('--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /usage: walkeeper wal-end DIR/);
});

t.test('CLI: bad input gives one stderr line and a non-zero exit', async (t) => {
  const good = newDir();
  writeSegs(good, segs);
  const wrongSize = newDir();
  writeFileSync(join(wrongSize, '000000010000000000000001'), segs[0].subarray(0, 4096));
  const file = join(root, 'plain-file');
  writeFileSync(file, 'not a dir');
  const cases: [string, string[]][] = [
    ['missing directory', [join(root, 'nope')]],
    ['not a directory', [file]],
    ['empty directory', [newDir()]],
    ['wrong-size file', [wrongSize, '--wal-seg-size', String(SEG)]],
    ['wrong-size file, size from its header', [wrongSize]],
    ['bad --wal-seg-size (not a power of two)', [good, '--wal-seg-size', '1000000']],
    ['bad --wal-seg-size (not a number)', [good, '--wal-seg-size', '16MB']],
    ['--wal-seg-size without a value', [good, '--wal-seg-size']],
    ['bad --timeline', [good, '--timeline', '0']],
    ['absent timeline', [good, '--timeline', '7']],
    ['unknown option', [good, '--frobnicate']],
    ['no DIR', []],
    ['two DIRs', [good, good]],
  ];
  for (const [label, args] of cases) {
    const r = cli(...args);
    t.not(r.status, 0, `${label}: exit ${r.status}`);
    t.equal(r.stdout, '', `${label}: nothing on stdout`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.equal(lines.length, 1, `${label}: one stderr line: ${r.stderr.trim()}`);
    t.match(lines[0], /^walkeeper wal-end: /);
  }
});
