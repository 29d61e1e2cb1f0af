// Feeding the same bytes, in the same chunks, to the wasm scanner and its TS
// twin, and summarising what each reported.
import { readFileSync } from 'node:fs';
import { segmentStart } from '../../src/lsn.js';
import { openWalDir } from '../../src/wal/segments.js';
import { TsWalScanner } from '../../src/hot/xlog-ts.js';
import { StopReason, WasmWalScanner, type ScannerOptions, type WalRecordInfo, type WalScanner } from '../../src/hot/xlog.js';
import { mulberry32 } from '../helpers/support.js';

export type Impl = 'wasm' | 'ts';

export interface ScanSummary {
  endLsn: bigint;
  lastRecordLsn: bigint | null;
  stopReason: StopReason;
  recordCount: number;
  position: bigint;
  records?: WalRecordInfo[];
}

/** Chunk lengths covering `total` bytes: fixed, or random in 1..max. */
export function chunkPlan(total: number, sizing: number | { random: () => number; max: number }): number[] {
  const out: number[] = [];
  let left = total;
  while (left > 0) {
    const n = typeof sizing === 'number' ? sizing : 1 + Math.floor(sizing.random() * sizing.max);
    out.push(Math.min(n, left));
    left -= n;
  }
  return out;
}

export function makeScanner(impl: Impl, opts: ScannerOptions): WalScanner {
  return impl === 'wasm' ? new WasmWalScanner(opts) : new TsWalScanner(opts);
}

/** Feed `data` in the planned chunks (draining records when the area fills) and summarise. */
export function scan(impl: Impl, opts: ScannerOptions, data: Uint8Array, plan: number[] = [data.length]): ScanSummary {
  const s = makeScanner(impl, opts);
  const records: WalRecordInfo[] = [];
  try {
    let off = 0;
    for (const len of plan) {
      let piece = data.subarray(off, off + len);
      off += len;
      while (piece.length > 0 && !s.stopped) {
        const used = s.feed(piece);
        piece = piece.subarray(used);
        if (piece.length > 0 && !s.stopped) records.push(...s.takeRecords());
      }
      if (s.stopped) break;
    }
    records.push(...s.takeRecords());
    const summary: ScanSummary = {
      endLsn: s.endLsn,
      lastRecordLsn: s.lastRecordLsn,
      stopReason: s.stopReason,
      recordCount: s.recordCount,
      position: s.position,
    };
    if (opts.recordCapacity) summary.records = records;
    return summary;
  } finally {
    s.free();
  }
}

/**
 * Scan a directory's consecutive segments (as findWalEnd does) with either
 * implementation, in random chunks; files are read whole (test sizes only).
 */
export async function scanDir(
  impl: Impl,
  dir: string,
  opts: { walSegSize?: number; timeline?: number; seed?: number; maxChunk?: number; recordCapacity?: number } = {},
): Promise<ScanSummary> {
  const set = await openWalDir(dir, opts);
  const start = segmentStart(set.lowestSegno, set.walSegSize);
  const s = makeScanner(impl, { walSegSize: set.walSegSize, startLsn: start, startKind: 'page', recordCapacity: opts.recordCapacity });
  const random = mulberry32(opts.seed ?? 1);
  const records: WalRecordInfo[] = [];
  try {
    for (let segno = set.lowestSegno; !s.stopped; segno++) {
      const file = set.fileFor(segno);
      if (!file) break;
      const data = readFileSync(file.path);
      if (data.length === 0) break;
      let off = 0;
      for (const len of chunkPlan(data.length, { random, max: opts.maxChunk ?? 1 << 16 })) {
        let piece = data.subarray(off, off + len);
        off += len;
        while (piece.length > 0 && !s.stopped) {
          const used = s.feed(piece);
          piece = piece.subarray(used);
          if (piece.length > 0 && !s.stopped) records.push(...s.takeRecords());
        }
        if (s.stopped) break;
      }
    }
    records.push(...s.takeRecords());
    const summary: ScanSummary = { endLsn: s.endLsn, lastRecordLsn: s.lastRecordLsn, stopReason: s.stopReason, recordCount: s.recordCount, position: s.position };
    if (opts.recordCapacity) summary.records = records;
    return summary;
  } finally {
    s.free();
  }
}
