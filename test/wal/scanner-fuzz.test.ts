// Differential fuzzing: 10,000 small windows of real PostgreSQL 15 WAL
// (2–8 pages), mutated (byte flips, zeroed ranges, truncation, stale pages,
// header fields), fed in random chunks to the wasm scanner and the TS twin.
// They must report the same end, reason, position and records every time,
// and the wasm result must not depend on the chunking.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { segmentStart } from '../../src/lsn.js';
import type { ScannerOptions } from '../../src/hot/xlog.js';
import { openWalDir } from '../../src/wal/segments.js';
import { startCluster } from '../helpers/pg.js';
import { segmentNames } from './pg-oracle.js';
import { chunkPlan, scan, scanDir } from './scan-helpers.js';
import { mulberry32 } from '../helpers/support.js';
import { FUZZ_RUNS, FUZZ_SEED } from '../helpers/fuzz.js';

const SEG = 1 << 20;
const PAGE = 8192;
// WK_FUZZ_SEED / WK_FUZZ_RUNS as test/helpers/fuzz.ts reads them ("random" included); its own defaults otherwise.
const RUNS = process.env.WK_FUZZ_RUNS ? FUZZ_RUNS : 10_000;
const SEED = process.env.WK_FUZZ_SEED ? FUZZ_SEED : 20240607;
t.comment(`seed ${SEED}, ${RUNS} runs (replay: WK_FUZZ_SEED=${SEED} WK_FUZZ_RUNS=${RUNS})`);

const pg = await startCluster(t, { walSegSizeMb: 1, conf: { autovacuum: 'off', wal_keep_size: '1GB' } });
await pg.pgbench(['-i', '-q', '-s', '1']);
await pg.sql('create table big (v text); alter table big alter v set storage external');
await pg.sql("insert into big select string_agg(md5(g::text || r::text), '') from generate_series(1, 1500) g, generate_series(1, 3) r group by r");
await pg.sql("select pg_logical_emit_message(false, 'wk', repeat('q', 30000))");
await pg.sql('select pg_switch_wal()');
await pg.pgbench(['-n', '-t', '100']);
await pg.stop();

// the WAL as one contiguous byte range from the lowest segment, and its records
const set = await openWalDir(pg.walDir);
const names = segmentNames(pg.walDir);
const base = segmentStart(set.lowestSegno, SEG);
const wal = Buffer.concat(names.map((n) => readFileSync(join(pg.walDir, n))));
const clean = await scanDir('wasm', pg.walDir, { recordCapacity: 4096 });
const records = clean.records!.filter((r) => r.lsn - base < BigInt(wal.length));
const recordAt = new Map(records.map((r, i) => [r.lsn, i]));

t.test(`${RUNS} mutated windows of real WAL: wasm and twin agree`, async (t) => {
  t.ok(records.length > 1000, `${records.length} records to draw from`);
  const random = mulberry32(SEED);
  const int = (n: number): number => Math.floor(random() * n);
  const mismatches: string[] = [];
  const reasons = new Map<number, number>();

  for (let run = 0; run < RUNS; run++) {
    // a window of 2–8 pages, often at a segment start
    const pages = 2 + int(7);
    const totalPages = wal.length / PAGE;
    let firstPage = int(totalPages - pages);
    if (random() < 0.2) firstPage = Math.floor(firstPage / (SEG / PAGE)) * (SEG / PAGE);
    const window = Buffer.from(wal.subarray(firstPage * PAGE, (firstPage + pages) * PAGE));
    const windowLsn = base + BigInt(firstPage * PAGE);

    let opts: ScannerOptions = { walSegSize: SEG, startLsn: windowLsn, startKind: 'page' };
    if (random() < 0.25) {
      // a known record start in the first page, with or without its predecessor
      const inPage = records.filter((r) => r.lsn >= windowLsn && r.lsn < windowLsn + BigInt(PAGE));
      if (inPage.length > 0) {
        const r = inPage[int(inPage.length)];
        const i = recordAt.get(r.lsn)!;
        opts = { walSegSize: SEG, startLsn: r.lsn, startKind: 'record', prevLsn: random() < 0.7 && i > 0 ? records[i - 1].lsn : undefined };
      }
    }

    let data: Uint8Array = window;
    const mutations = int(4);
    for (let m = 0; m < mutations; m++) data = mutate(data, int, wal);

    const sizing = random() < 0.02 ? 1 : { random, max: [16, 500, 9000, 70000][int(4)] };
    const plan = chunkPlan(data.length, sizing);
    const withRecords = { ...opts, recordCapacity: 1 + int(40) };
    const wasm = scan('wasm', withRecords, data, plan);
    const ts = scan('ts', withRecords, data, plan);
    const whole = scan('wasm', withRecords, data);
    reasons.set(wasm.stopReason, (reasons.get(wasm.stopReason) ?? 0) + 1);
    const same = (a: unknown, b: unknown): boolean => JSON.stringify(a, big) === JSON.stringify(b, big);
    if (!same(wasm, ts) || !same({ ...wasm, position: 0n }, { ...whole, position: 0n })) {
      mismatches.push(`run ${run}: start ${opts.startKind} ${opts.startLsn} (${data.length} bytes): wasm ${JSON.stringify(summaryOf(wasm), big)} ts ${JSON.stringify(summaryOf(ts), big)} whole ${JSON.stringify(summaryOf(whole), big)}`);
      if (mismatches.length >= 5) break;
    }
  }
  t.same(mismatches, [], 'no disagreement');
  t.ok(reasons.size >= 6, `stop reasons seen: ${JSON.stringify(Object.fromEntries(reasons))}`);
});

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString(16) : v;
}

function summaryOf(s: ReturnType<typeof scan>): object {
  return { end: s.endLsn, last: s.lastRecordLsn, reason: s.stopReason, count: s.recordCount, position: s.position, records: s.records?.length };
}

/** One random mutation of a window of WAL pages. */
function mutate(data: Uint8Array, int: (n: number) => number, wal: Buffer): Uint8Array {
  const d = Buffer.from(data);
  const pages = Math.ceil(d.length / PAGE);
  switch (int(7)) {
    case 0: // a flip anywhere
      d[int(d.length)] ^= 1 << int(8);
      return d;
    case 1: {
      // a flip in a page header
      const at = int(pages) * PAGE + int(40);
      if (at < d.length) d[at] ^= 1 << int(8);
      return d;
    }
    case 2: {
      // a zeroed range
      const from = int(d.length);
      d.fill(0, from, Math.min(d.length, from + 1 + int(3000)));
      return d;
    }
    case 3: // truncation
      return d.subarray(0, int(d.length));
    case 4: {
      // a stale page: the same offset from elsewhere in the WAL
      const p = int(pages);
      const other = int(wal.length / PAGE);
      if ((p + 1) * PAGE <= d.length) wal.copy(d, p * PAGE, other * PAGE, other * PAGE + PAGE);
      return d;
    }
    case 5: {
      // a header field set to something plausible: rem_len, info, tli
      const p = int(pages) * PAGE;
      if (p + 24 > d.length) return d;
      const field = int(3);
      if (field === 0) d.writeUInt32LE(int(20000), p + 16);
      else if (field === 1) d.writeUInt16LE(int(16), p + 2);
      else d.writeUInt32LE(int(3), p + 4);
      return d;
    }
    default: {
      // a flip in the first 24 bytes after an 8-aligned offset (a likely record header)
      const at = Math.floor(int(d.length) / 8) * 8 + int(24);
      if (at < d.length) d[at] ^= 1 << int(8);
      return d;
    }
  }
}
