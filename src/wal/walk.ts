// List WAL records from a start LSN: the walker side of the scanner, for WAL
// inspection. Stops at the end of WAL or after `limit` records.
import type { Lsn } from '../lsn.js';
import { stopReasonName, WasmWalScanner, type WalRecordInfo } from '../hot/xlog.js';
import { driveScan } from './scan.js';
import { openWalDir, type WalDirOptions } from './segments.js';
import { feedStart, scannerStart, type ScanStartOptions } from './start.js';

export interface WalkOptions extends WalDirOptions, ScanStartOptions {
  /** Most records to return (default 1000). */
  limit?: number;
}

export interface WalkResult {
  /** Records with lsn ≥ the start, in order. The last one may have crcValid = false (the scan ended there). */
  records: WalRecordInfo[];
  /** True when the walk ended because `limit` records were returned (more may follow). */
  limited: boolean;
  /** Where the record after the last returned one starts; the end of WAL when not limited. */
  nextLsn: Lsn;
  /** Why the scan ended when not limited ("incomplete", "zero-length", "bad-crc", ...). */
  stopReason: string;
  timeline: number;
  walSegSize: number;
}

const BATCH = 1024;

export async function walkRecords(dir: string, opts: WalkOptions = {}): Promise<WalkResult> {
  const limit = opts.limit ?? 1000;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`invalid limit ${limit}`);
  const set = await openWalDir(dir, opts);
  const start = scannerStart(set, opts);
  const scanner = new WasmWalScanner({ walSegSize: set.walSegSize, ...start, recordCapacity: Math.min(BATCH, limit) });
  const records: WalRecordInfo[] = [];
  // A page start may lead to records before the requested LSN: skip them.
  // The record area is sized to what is still wanted, so the scanner pauses
  // right after the last record returned and its end is where the next starts.
  const take = (): boolean => {
    for (const r of scanner.takeRecords()) if (r.lsn >= start.startLsn) records.push(r);
    if (records.length >= limit) return false;
    scanner.setRecordCapacity(limit - records.length);
    return true;
  };
  try {
    await driveScan(set, scanner, { fromLsn: feedStart(start.startLsn), onRecordsFull: take });
    take();
    const limited = records.length >= limit && (records.at(-1)?.crcValid ?? true);
    return {
      records,
      limited,
      nextLsn: scanner.endLsn,
      stopReason: limited ? 'limit' : stopReasonName(scanner.stopReason),
      timeline: set.timeline,
      walSegSize: set.walSegSize,
    };
  } finally {
    scanner.free();
  }
}
