// End of WAL on real PostgreSQL 15 WAL (16 MiB segments): pgbench, large
// rows, a logical message spanning pages, a WAL switch, checkpoints that
// leave recycled segments with stale contents. walkeeper's end must equal
// pg_waldump's exactly, undamaged and on damaged copies; the wasm scanner
// and the TS twin must agree; the walker must list what pg_waldump lists.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, parseLsn, segmentFileName, segmentNumber, segmentOffset, segmentStart } from '../../src/lsn.js';
import { findWalEnd } from '../../src/wal/wal-end.js';
import { walkRecords } from '../../src/wal/walk.js';
import { rmgrName } from '../../src/wal/rmgr.js';
import { projectRoot } from '../../src/hot/wasm.js';
import { startCluster } from '../helpers/pg.js';
import { copyWal, damageFile, removeCopies, segmentNames, waldumpEnd, waldumpRecords } from './pg-oracle.js';
import { chunkPlan, scan, scanDir } from './scan-helpers.js';
import { mulberry32 } from '../helpers/support.js';

const SEG = 16 << 20;
t.teardown(() => (process.env.WK_KEEP ? undefined : removeCopies()));
const TLI = 1;

const pg = await startCluster(t, { conf: { autovacuum: 'off', wal_keep_size: 0, min_wal_size: '256MB' } });
// 1. WAL to be recycled: checkpoints rename old segments to future names
await pg.pgbench(['-i', '-q', '-s', '6']);
await pg.sql('checkpoint');
await pg.sql('select pg_switch_wal()');
await pg.sql('checkpoint');
// 2. keep everything from here on
await pg.sql("alter system set wal_keep_size = '4GB'");
await pg.sql('select pg_reload_conf()');
const startLsn = parseLsn(await pg.sql('select pg_current_wal_lsn()'));
await pg.pgbench(['-n', '-c', '2', '-t', '400']);
await pg.sql('create table big (v text); alter table big alter v set storage external');
await pg.sql("insert into big select string_agg(md5(g::text || r::text), '') from generate_series(1, 2500) g, generate_series(1, 4) r group by r");
await pg.sql("select pg_logical_emit_message(false, 'wk', repeat('m', 40000))");
const switchEnd = parseLsn(await pg.sql("select pg_switch_wal()"));
// ~20 MB of rows after the switch, so records cross a segment boundary too
await pg.sql("insert into big select string_agg(md5(g::text || r::text), '') from generate_series(1, 2500) g, generate_series(1, 250) r group by r");
await pg.pgbench(['-n', '-t', '100']);
await pg.stop();

const walDir = pg.walDir;
const firstSeg = segmentFileName(TLI, segmentNumber(startLsn, SEG), SEG);
const names = segmentNames(walDir).filter((n) => n >= firstSeg);
// a copy to work from: the kept segments (from the one holding startLsn) and the recycled ones after them
const dir = copyWal(walDir, names);

const oracle = await waldumpEnd(dir, TLI, segmentStart(segmentNumber(startLsn, SEG), SEG), SEG);
const ours = await findWalEnd(dir);

t.test('findWalEnd equals pg_waldump on real WAL', async (t) => {
  t.ok(oracle.endLsn, `pg_waldump: ${oracle.message}`);
  t.equal(formatLsn(ours.endLsn), formatLsn(oracle.endLsn!), 'end of WAL');
  t.equal(ours.lastRecordLsn, oracle.lastRecordLsn, 'last valid record');
  t.equal(ours.stopReason, 'zero-length');
  t.equal(ours.timeline, TLI);
  t.equal(ours.walSegSize, SEG);
  t.equal(ours.segmentName, segmentFileName(TLI, segmentNumber(ours.endLsn, SEG), SEG));
  t.ok(ours.segmentsScanned >= 2, 'the scan crossed segments (and the SWITCH)');
});

t.test('recycled segments with stale contents are present and ignored', async (t) => {
  const endSeg = segmentNumber(ours.endLsn, SEG);
  const stale = names.filter((n) => {
    const segno = BigInt('0x' + n.slice(8, 16)) * 256n + BigInt('0x' + n.slice(16, 24));
    if (segno <= endSeg) return false;
    const pageaddr = readFileSync(join(dir, n)).readBigUInt64LE(8);
    return pageaddr !== segmentStart(segno, SEG);
  });
  t.ok(stale.length > 0, `a future-named segment whose first page has a stale pageaddr: ${stale.join(', ')}`);
  // end the WAL exactly at a segment boundary, followed by a recycled file: the stale page must stop the scan
  const switchSeg = segmentNumber(switchEnd - 1n, SEG);
  const kept = names.filter((n) => n <= segmentFileName(TLI, switchSeg, SEG));
  const d = copyWal(dir, [...kept, [stale[0], segmentFileName(TLI, switchSeg + 1n, SEG)]]);
  const r = await findWalEnd(d);
  t.equal(r.stopReason, 'bad-pageaddr');
  t.equal(r.endLsn, segmentStart(switchSeg + 1n, SEG), 'end = the segment boundary after the SWITCH');
  const o = await waldumpEnd(d, TLI, segmentStart(segmentNumber(startLsn, SEG), SEG), SEG);
  t.match(o.message, /unexpected pageaddr/);
  t.equal(r.endLsn, o.endLsn);
});

t.test('WAL ending with XLOG_SWITCH: the end is the next segment start', async (t) => {
  const switchSeg = segmentNumber(switchEnd - 1n, SEG);
  const d = copyWal(dir, names.filter((n) => n <= segmentFileName(TLI, switchSeg, SEG)));
  const r = await findWalEnd(d);
  const o = await waldumpEnd(d, TLI, segmentStart(segmentNumber(startLsn, SEG), SEG), SEG);
  t.equal(r.endLsn, segmentStart(switchSeg + 1n, SEG));
  t.equal(r.endLsn, o.endLsn, 'pg_waldump agrees');
  t.equal(r.stopReason, 'incomplete', 'the next segment is missing');
  t.equal(r.segmentName, segmentFileName(TLI, switchSeg + 1n, SEG));
  const walked = await walkRecords(d, { startLsn: r.lastRecordLsn!, limit: 5 });
  t.equal(walked.records.length, 1);
  t.equal(rmgrName(walked.records[0].rmid), 'XLOG');
  t.equal(walked.records[0].info & 0xf0, 0x40, 'the last record is the SWITCH');
});

t.test('the CLI prints the same end', async (t) => {
  const bin = join(projectRoot(), 'bin', 'walkeeper.js');
  const text = execFileSync(process.execPath, [bin, 'wal-end', dir], { encoding: 'utf8' });
  t.equal(text, `end_lsn=${formatLsn(oracle.endLsn!)} timeline=1 segment=${ours.segmentName}\n`);
  const json = JSON.parse(execFileSync(process.execPath, [bin, 'wal-end', dir, '--json', '--timeline', '1', '--wal-seg-size', String(SEG)], { encoding: 'utf8' }));
  t.equal(json.end_lsn, formatLsn(oracle.endLsn!));
  t.equal(json.wal_seg_size, SEG);
  t.equal(json.last_record_lsn, formatLsn(oracle.lastRecordLsn!));
  t.equal(json.stop_reason, 'zero-length');
});

t.test('wasm scanner and TS twin agree in random chunks, and in 1-byte chunks on a small range', async (t) => {
  const wasm = await scanDir('wasm', dir, { seed: 7 });
  const ts = await scanDir('ts', dir, { seed: 7 });
  t.same(ts, wasm);
  t.equal(wasm.endLsn, oracle.endLsn);
  const other = await scanDir('wasm', dir, { seed: 99, maxChunk: 5000 });
  t.same({ ...other, position: 0n }, { ...wasm, position: 0n }, 'other chunking, same result');
  // 1-byte chunks over the last pages: from a page 3 pages before the last record
  const lastRec = oracle.lastRecordLsn!;
  const from = lastRec - (lastRec % 8192n) - 3n * 8192n;
  const seg = readFileSync(join(dir, segmentFileName(TLI, segmentNumber(from, SEG), SEG)));
  const off = segmentOffset(from, SEG);
  const bytes = seg.subarray(off, Math.min(SEG, off + 6 * 8192));
  const opts = { walSegSize: SEG, startLsn: from, startKind: 'page' as const, recordCapacity: 64 };
  const whole = scan('wasm', opts, bytes);
  const plan = chunkPlan(bytes.length, 1);
  t.same(scan('wasm', opts, bytes, plan), scan('ts', opts, bytes, plan));
  t.same({ ...scan('ts', opts, bytes, plan), position: 0n }, { ...whole, position: 0n });
  t.equal(whole.endLsn, oracle.endLsn);
});

t.test('the walker lists what pg_waldump lists, including records crossing pages', async (t) => {
  const from = segmentStart(segmentNumber(startLsn, SEG), SEG);
  const limit = 4000;
  const dumped = (await waldumpRecords(dir, TLI, from, limit)).records;
  const walked = await walkRecords(dir, { limit });
  t.equal(walked.records.length, dumped.length);
  t.same(
    walked.records.map((r) => [formatLsn(r.lsn), r.totLen, rmgrName(r.rmid), r.xid]),
    dumped.map((r) => [formatLsn(r.lsn), r.tot, r.rmgr, r.xid]),
  );
  t.ok(walked.limited);
  // everything, in pages: the big rows and the logical message cross pages
  const all = await scanDir('wasm', dir, { recordCapacity: 4096 });
  const recs = all.records!;
  t.equal(recs.length, all.recordCount);
  const crossing = recs.filter((r) => Number(r.lsn % 8192n) + r.totLen > 8192);
  t.ok(crossing.length > 10, `${crossing.length} records cross a page boundary`);
  t.ok(
    recs.some((r) => r.rmid === 21 && r.totLen > 40000),
    'the 40 KB logical message spans several pages',
  );
  const crossingSeg = recs.filter((r, i) => i + 1 < recs.length && segmentNumber(recs[i + 1].lsn, SEG) > segmentNumber(r.lsn, SEG) && !(r.rmid === 0 && (r.info & 0xf0) === 0x40) && segmentOffset(recs[i + 1].lsn, SEG) > 40);
  t.ok(crossingSeg.length > 0, `${crossingSeg.length} records cross a segment boundary`);
  // paging: continue from nextLsn with the last record as predecessor
  const page1 = await walkRecords(dir, { limit: 10 });
  const page2 = await walkRecords(dir, { startLsn: page1.nextLsn, prevLsn: page1.records[9].lsn, limit: 10 });
  t.same(
    [...page1.records, ...page2.records].map((r) => r.lsn),
    recs.slice(0, 20).map((r) => r.lsn),
  );
});

t.test('damaged copies: the end equals pg_waldump each time', async (t) => {
  const lastRec = oracle.lastRecordLsn!;
  const endSeg = segmentNumber(oracle.endLsn!, SEG);
  const endName = segmentFileName(TLI, endSeg, SEG);
  const prevName = segmentFileName(TLI, endSeg - 1n, SEG);
  const start = segmentStart(endSeg - 1n, SEG);
  const all = (await scanDir('wasm', dir, { recordCapacity: 4096 })).records!;
  const inEndSeg = all.filter((r) => segmentNumber(r.lsn, SEG) === endSeg);
  t.ok(inEndSeg.length > 50, `${inEndSeg.length} records in the last segment`);
  const usedBytes = segmentOffset(oracle.endLsn!, SEG);
  const stale = readFileSync(join(dir, names[names.length - 1]));
  const random = mulberry32(42);

  const cases: [string, (b: Buffer) => void, (r: Awaited<ReturnType<typeof findWalEnd>>) => void][] = [
    [
      'a flipped byte in the body of the last record with a body (CRC)',
      (b) => {
        // the flipped byte must be in the record's own page, not in the next page's header
        const rec = [...inEndSeg].reverse().find((r) => r.totLen > 40 && Number(r.lsn % 8192n) + 31 <= 8192)!;
        b[segmentOffset(rec.lsn, SEG) + 30] ^= 0x20;
      },
      (r) => t.equal(r.stopReason, 'bad-crc'),
    ],
    [
      'a zeroed tail from the middle of the last segment',
      (b) => b.fill(0, Math.floor(usedBytes / 2)),
      () => {},
    ],
    [
      'a zeroed page in the middle of the last segment',
      (b) => {
        const page = Math.floor(usedBytes / 2 / 8192) * 8192;
        b.fill(0, page, page + 8192);
      },
      (r) => t.ok(['bad-magic', 'zero-length'].includes(r.stopReason), r.stopReason),
    ],
    [
      'a stale page (from a recycled segment) in the middle of the last segment',
      (b) => {
        const page = Math.floor(usedBytes / 3 / 8192) * 8192;
        stale.copy(b, page, page, page + 8192);
      },
      (r) => t.equal(r.stopReason, 'bad-pageaddr'),
    ],
    [
      'random byte flips in record headers near the end',
      (b) => {
        for (let i = 0; i < 3; i++) {
          const rec = inEndSeg[inEndSeg.length - 1 - Math.floor(random() * 20)];
          b[segmentOffset(rec.lsn, SEG) + Math.floor(random() * 20)] ^= 1 << Math.floor(random() * 8);
        }
      },
      () => {},
    ],
  ];
  for (const [label, damage, extra] of cases) {
    const d = copyWal(dir, [prevName, endName]);
    damageFile(join(d, endName), damage);
    const r = await findWalEnd(d);
    const o = await waldumpEnd(d, TLI, start, SEG);
    t.equal(formatLsn(r.endLsn), formatLsn(o.endLsn!), `${label}: end (${o.message})`);
    t.equal(r.lastRecordLsn, o.lastRecordLsn, `${label}: last record`);
    t.ok(r.endLsn <= oracle.endLsn!, `${label}: not past the undamaged end`);
    extra(r);
    t.same({ ...(await scanDir('ts', d, { seed: 3 })), position: 0n }, { ...(await scanDir('wasm', d, { seed: 4 })), position: 0n }, `${label}: twin agrees`);
  }
  t.ok(lastRec > start);
});

t.test('a pg_receivewal-style zero-padded .partial wins over the full file of the same segment', async (t) => {
  const endSeg = segmentNumber(oracle.endLsn!, SEG);
  const endName = segmentFileName(TLI, endSeg, SEG);
  const prevName = segmentFileName(TLI, endSeg - 1n, SEG);
  const all = (await scanDir('wasm', dir, { recordCapacity: 4096 })).records!;
  const inEndSeg = all.filter((r) => segmentNumber(r.lsn, SEG) === endSeg);
  // cut after a record in the middle: bytes after its end are zeros, as in a .partial still being written.
  // The cut record must lie within one page (zeros inside it would be a bad CRC, not the end): the first such past the middle.
  const withinOnePage = (r: (typeof inEndSeg)[number]) => Number(r.lsn % 8192n) + r.totLen < 8192 && segmentOffset(r.lsn, SEG) + r.totLen + 8 < SEG;
  const cut = inEndSeg.slice(Math.floor(inEndSeg.length / 2)).find(withinOnePage)!;
  const d = copyWal(dir, [prevName, endName, [endName, endName + '.partial']]);
  const cutAt = segmentOffset(cut.lsn, SEG) + cut.totLen;
  t.ok(cutAt + 8 < SEG && Number(cut.lsn % 8192n) + cut.totLen < 8192, 'the cut record lies within one page');
  damageFile(join(d, endName + '.partial'), (b) => b.fill(0, cutAt));
  const r = await findWalEnd(d);
  t.equal(r.stopReason, 'zero-length');
  t.equal(r.lastRecordLsn, cut.lsn, 'the .partial was read, not the full file');
  // pg_waldump does not read .partial files: give it the same bytes under the plain name
  const plain = copyWal(d, [prevName, [endName + '.partial', endName]]);
  const o = await waldumpEnd(plain, TLI, segmentStart(endSeg - 1n, SEG), SEG);
  t.equal(formatLsn(r.endLsn), formatLsn(o.endLsn!));
  // an empty .partial (a segment not started): the WAL ends at its start
  const empty = copyWal(dir, [prevName]);
  writeFileSync(join(empty, endName + '.partial'), '');
  const e = await findWalEnd(empty);
  t.equal(e.endLsn <= segmentStart(endSeg, SEG), true);
  renameSync(join(empty, endName + '.partial'), join(empty, 'ignored'));
  t.same((await findWalEnd(empty)).endLsn, e.endLsn, 'same as without the empty file');
});
