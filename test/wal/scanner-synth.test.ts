// The scanner on WAL built byte by byte: the edge cases of PostgreSQL's
// reader that real WAL shows rarely or never (split headers, overwritten
// continuation records, timeline and magic rules). Every case runs on the
// wasm scanner and the TS twin, whole and in 1-byte and random chunks.
import t, { type Test } from 'tap';
import { StopReason, type ScannerOptions } from '../../src/hot/xlog.js';
import { BLCKSZ, WalBuilder } from './synth.js';
import { chunkPlan, makeScanner, scan, type ScanSummary } from './scan-helpers.js';
import { mulberry32 } from '../helpers/support.js';

const SEG = 1 << 20;

/** Scan with both implementations and several chunkings; all must agree. Returns the summary. */
function scanAll(t: Test, opts: ScannerOptions, data: Uint8Array, label: string): ScanSummary {
  const r = mulberry32(data.length);
  const plans = [[data.length], chunkPlan(data.length, 1), chunkPlan(data.length, { random: r, max: 700 }), chunkPlan(data.length, 8191)];
  // where a stopped scanner's position ends up depends on the chunking, not on the implementation
  const { position: _, ...ref } = scan('wasm', { ...opts, recordCapacity: 3 }, data);
  for (const plan of plans) {
    const wasm = scan('wasm', { ...opts, recordCapacity: 3 }, data, plan);
    const ts = scan('ts', { ...opts, recordCapacity: 3 }, data, plan);
    t.same(ts, wasm, `${label}: twin equals wasm with ${plan.length} chunks`);
    const { position: __, ...rest } = wasm;
    t.same(rest, ref, `${label}: same result with ${plan.length} chunks`);
  }
  return { ...ref, position: 0n };
}

const pageStart = (w: WalBuilder): ScannerOptions => ({ walSegSize: w.segSize, startLsn: w.start, startKind: 'page' });

t.test('records crossing pages, with the 24-byte header split after 8 and 16 bytes', async (t) => {
  for (const before of [8, 16]) {
    const w = new WalBuilder();
    w.fill(BLCKSZ + 1000);
    // a filler record so that the next one starts `before` bytes before the page end
    const room = BLCKSZ - ((Math.ceil(w.pos / 8) * 8) % BLCKSZ);
    w.append({ body: room - before - 24 });
    t.equal(BLCKSZ - (Math.ceil(w.pos / 8) * 8) % BLCKSZ, before, 'next record starts where intended');
    const split = w.append({ body: 5000 });
    w.append({ body: 30 });
    const r = scanAll(t, pageStart(w), w.bytes(), `split ${before}`);
    t.equal(r.stopReason, StopReason.ZeroLength);
    t.equal(r.endLsn, w.end);
    t.equal(r.lastRecordLsn, w.lastRecord);
    t.ok(r.recordCount === w.records.length && w.records.includes(split));
  }
});

t.test('a record crossing a segment boundary, and a start page that is all continuation', async (t) => {
  const w = new WalBuilder({ start: BigInt(SEG) });
  w.fill(SEG - 3000);
  const big = w.append({ body: 3 * BLCKSZ + 100 });
  w.append({ body: 10 });
  t.ok(big < BigInt(2 * SEG) && w.end > BigInt(2 * SEG) + BigInt(2 * BLCKSZ), 'record spans into the next segment over several pages');
  const all = scanAll(t, pageStart(w), w.bytes(), 'from segment start');
  t.equal(all.endLsn, w.end);
  t.equal(all.stopReason, StopReason.ZeroLength);
  // start at the next segment: its first pages hold only continuation data
  const from = SEG;
  const data = w.bytes().subarray(from);
  const r = scanAll(t, { walSegSize: SEG, startLsn: BigInt(2 * SEG), startKind: 'page' }, data, 'from the next segment');
  t.equal(r.recordCount, 1, 'only the record after the continuation is found');
  t.equal(r.lastRecordLsn, w.lastRecord);
  t.equal(r.endLsn, w.end);
});

t.test('XLOG_SWITCH: the rest of the segment is skipped, the end is the next segment start', async (t) => {
  const w = new WalBuilder();
  w.fill(20000);
  w.append({ rmid: 0, info: 0x40 });
  const atSwitchEnd = w.end;
  t.equal(atSwitchEnd, BigInt(2 * SEG));
  let r = scanAll(t, pageStart(w), w.bytes(SEG), 'switch, next segment missing');
  t.equal(r.endLsn, atSwitchEnd);
  t.equal(r.stopReason, StopReason.Running, 'wants the next segment');
  w.append({ body: 50 });
  w.append({ body: 50 });
  r = scanAll(t, pageStart(w), w.bytes(), 'switch, next segment present');
  t.equal(r.endLsn, w.end);
  t.equal(r.lastRecordLsn, w.lastRecord);
  t.equal(r.stopReason, StopReason.ZeroLength);
});

t.test('XLP_FIRST_IS_OVERWRITE_CONTRECORD drops the torn record and reads on', async (t) => {
  const w = new WalBuilder();
  w.fill(BLCKSZ + 4000);
  const good = w.lastRecord;
  const tornAt = Number(w.lsn(Math.ceil(w.pos / 8) * 8) - w.start);
  w.appendTorn({ body: 20000 }, 2 * BLCKSZ - (tornAt % BLCKSZ) - 40);
  w.skipTo(Math.ceil(w.pos / BLCKSZ) * BLCKSZ);
  w.nextPageExtraInfo = 8;
  const over = w.append({ rmid: 0, info: 0xd0, body: 16, prev: good });
  w.append({ body: 40 });
  const r = scanAll(t, pageStart(w), w.bytes(), 'overwrite');
  t.equal(r.stopReason, StopReason.ZeroLength);
  t.equal(r.endLsn, w.end);
  t.ok(r.records!.some((x) => x.lsn === over), 'the OVERWRITE_CONTRECORD record is read');
  // without the flag, the same page is a missing continuation
  const w2 = new WalBuilder();
  w2.fill(BLCKSZ + 4000);
  const tornAt2 = Number(w2.lsn(Math.ceil(w2.pos / 8) * 8) - w2.start);
  w2.appendTorn({ body: 20000 }, 2 * BLCKSZ - (tornAt2 % BLCKSZ) - 40);
  w2.skipTo(Math.ceil(w2.pos / BLCKSZ) * BLCKSZ);
  w2.append({ body: 16 });
  const r2 = scanAll(t, pageStart(w2), w2.bytes(), 'torn without overwrite flag');
  t.equal(r2.stopReason, StopReason.NoContrecord);
  t.equal(r2.endLsn, w2.lsn(tornAt2));
});

t.test('page header rules: magic, info bits, pageaddr, timeline, long header', async (t) => {
  const base = new WalBuilder();
  base.fill(4 * BLCKSZ);
  const data = base.bytes();
  const page2 = 2 * BLCKSZ;
  const view = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset);
  // the record that crosses into page 2 (or starts there) is where the end must be
  const recsBefore = base.records.filter((l) => l < base.start + BigInt(page2));
  const crossing = recsBefore[recsBefore.length - 1];

  const cases: [string, (d: Uint8Array) => void, StopReason][] = [
    ['zeroed magic', (d) => view(d).setUint16(page2, 0, true), StopReason.BadMagic],
    ['PG 13 magic mixed into a PG 15 scan', (d) => view(d).setUint16(page2, 0xd106, true), StopReason.BadMagic],
    ['undefined info bit', (d) => view(d).setUint16(page2 + 2, view(d).getUint16(page2 + 2, true) | 0x10, true), StopReason.BadInfoBits],
    ['stale pageaddr', (d) => view(d).setBigUint64(page2 + 8, base.start + BigInt(page2) - BigInt(SEG), true), StopReason.BadPageAddr],
    ['timeline going down', (d) => view(d).setUint32(page2 + 4, 0, true), StopReason.BadTimeline],
    ['wrong xlp_rem_len', (d) => view(d).setUint32(page2 + 16, view(d).getUint32(page2 + 16, true) + 8, true), StopReason.BadContrecordLength],
    ['contrecord flag cleared', (d) => view(d).setUint16(page2 + 2, view(d).getUint16(page2 + 2, true) & ~1, true), StopReason.NoContrecord],
  ];
  for (const [label, damage, reason] of cases) {
    const d = data.slice();
    damage(d);
    const r = scanAll(t, pageStart(base), d, label);
    t.equal(r.stopReason, reason, `${label}: reason`);
    t.equal(r.endLsn, crossing, `${label}: end at the record entering the page`);
  }
  // the long header of a segment's first page
  for (const [label, off, value] of [
    ['xlp_seg_size', 32, 2 * SEG],
    ['xlp_xlog_blcksz', 36, 4096],
  ] as const) {
    const d = data.slice();
    view(d).setUint32(off, value, true);
    const r = scanAll(t, pageStart(base), d, label);
    t.equal(r.stopReason, StopReason.BadLongHeader, label);
    t.equal(r.endLsn, base.start);
    t.equal(r.lastRecordLsn, null);
  }
  const noLong = data.slice();
  view(noLong).setUint16(2, 0x0004, true);
  t.equal(scanAll(t, pageStart(base), noLong, 'no long header').stopReason, StopReason.BadInfoBits);
  // a PG 13 or 17 scan is fine as long as every page agrees
  for (const magic of [0xd106, 0xd116]) {
    const w = new WalBuilder({ magic });
    w.fill(3 * BLCKSZ);
    t.equal(scanAll(t, pageStart(w), w.bytes(), `magic ${magic.toString(16)}`).endLsn, w.end);
  }
  // a higher timeline on later pages is fine
  const w = new WalBuilder();
  w.fill(BLCKSZ);
  w.tli = 2;
  w.fill(3 * BLCKSZ);
  t.equal(scanAll(t, pageStart(w), w.bytes(), 'timeline going up').endLsn, w.end);
});

t.test('record header rules: length, rmid, prev-link, CRC', async (t) => {
  const w = new WalBuilder();
  w.fill(3000);
  const last = w.lastRecord;
  const endBefore = w.end;
  const rel = Number(endBefore - w.start);
  const cases: [string, (v: DataView, d: Uint8Array) => void, StopReason][] = [
    ['tot_len 20', (v) => v.setUint32(rel, 20, true), StopReason.BadLength],
    ['tot_len 2 GiB', (v) => v.setUint32(rel, 0x80000000, true), StopReason.BadLength],
    ['rmid 100', (v, d) => (v.setUint32(rel, 40, true), (d[rel + 17] = 100)), StopReason.BadRmid],
    ['rmid 200 (custom range) with a garbage CRC', (v, d) => (v.setUint32(rel, 24, true), v.setBigUint64(rel + 8, last, true), (d[rel + 17] = 200)), StopReason.BadCrc],
    ['prev-link wrong', (v) => (v.setUint32(rel, 24, true), v.setBigUint64(rel + 8, last - 8n, true)), StopReason.BadPrev],
  ];
  for (const [label, damage, reason] of cases) {
    const d = w.bytes();
    damage(new DataView(d.buffer), d);
    const r = scanAll(t, pageStart(w), d, label);
    t.equal(r.stopReason, reason, label);
    t.equal(r.endLsn, endBefore, `${label}: end`);
    t.equal(r.lastRecordLsn, last);
  }
  // a flipped body byte of the last record: its CRC fails, the walker still reports it as invalid
  const d = w.bytes();
  d[Number(last - w.start) + 30] ^= 0x01;
  const r = scanAll(t, pageStart(w), d, 'flipped body byte');
  t.equal(r.stopReason, StopReason.BadCrc);
  t.equal(r.endLsn, last);
  const lastOut = r.records![r.records!.length - 1];
  t.equal(lastOut.lsn, last);
  t.equal(lastOut.crcValid, false);
});

t.test('record starts: known record with its predecessor, bad offsets, contrecord requested', async (t) => {
  const w = new WalBuilder();
  w.fill(5 * BLCKSZ);
  const data = w.bytes();
  const i = 20;
  const rec = w.records[i];
  const pageOfRec = rec - (rec % BigInt(BLCKSZ));
  const slice = data.subarray(Number(pageOfRec - w.start));
  const full = scanAll(t, { walSegSize: SEG, startLsn: rec, startKind: 'record', prevLsn: w.records[i - 1] }, slice, 'record start');
  t.equal(full.endLsn, w.end);
  t.equal(full.recordCount, w.records.length - i);
  const wrongPrev = scanAll(t, { walSegSize: SEG, startLsn: rec, startKind: 'record', prevLsn: w.records[i - 2] }, slice, 'wrong predecessor');
  t.equal(wrongPrev.stopReason, StopReason.BadPrev);
  t.equal(wrongPrev.endLsn, rec);
  const unknownPrev = scanAll(t, { walSegSize: SEG, startLsn: rec, startKind: 'record' }, slice, 'unknown predecessor');
  t.equal(unknownPrev.endLsn, w.end);
  // inside a page header
  const inHeader = scanAll(t, { walSegSize: SEG, startLsn: w.start + BigInt(BLCKSZ) + 16n, startKind: 'record' }, data.subarray(BLCKSZ), 'inside a page header');
  t.equal(inHeader.stopReason, StopReason.BadRecordOffset);
  // a record start at a page that begins with continuation data
  const contPage = [1, 2, 3, 4].find((p) => (data[p * BLCKSZ + 2] & 1) === 1)!;
  t.ok(contPage, 'some page starts with a continuation');
  const requested = scanAll(t, { walSegSize: SEG, startLsn: w.start + BigInt(contPage * BLCKSZ), startKind: 'record', prevLsn: 1n }, data.subarray(contPage * BLCKSZ), 'contrecord requested');
  t.equal(requested.stopReason, StopReason.ContrecordRequested);
});

t.test('walker output pauses when full and resumes without losing records', async (t) => {
  const w = new WalBuilder();
  w.fill(6 * BLCKSZ, 90);
  for (const cap of [1, 2, 7]) {
    for (const impl of ['wasm', 'ts'] as const) {
      const r = scan(impl, { ...pageStart(w), recordCapacity: cap }, w.bytes(), chunkPlan(w.pos, 333));
      t.same(
        r.records!.map((x) => x.lsn),
        w.records,
        `${impl}, capacity ${cap}`,
      );
    }
  }
});

t.test('several scanners alive at once keep their own state', async (t) => {
  const a = new WalBuilder();
  a.fill(5 * BLCKSZ, 300);
  const b = new WalBuilder({ start: BigInt(3 * SEG) });
  b.fill(7 * BLCKSZ, 120);
  const da = a.bytes();
  const db = b.bytes();
  const sa = makeScanner('wasm', pageStart(a));
  const sb = makeScanner('wasm', pageStart(b));
  for (let off = 0; off < Math.max(da.length, db.length); off += 1000) {
    if (off < da.length) sa.feed(da.subarray(off, off + 1000));
    if (off < db.length) sb.feed(db.subarray(off, off + 1000));
  }
  t.equal(sa.endLsn, a.end);
  t.equal(sb.endLsn, b.end);
  t.equal(sa.recordCount, a.records.length);
  t.equal(sb.recordCount, b.records.length);
  sa.free();
  sb.free();
});
