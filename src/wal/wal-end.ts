// Find the end of valid WAL in a directory of segment files: the LSN where
// PostgreSQL's reader (and pg_waldump) would stop, i.e. MAXALIGN(end of the
// last valid record), or the next segment start after an XLOG_SWITCH.
import { segmentFileName, segmentNumber, type Lsn } from '../lsn.js';
import { StopReason, stopReasonName, WasmWalScanner } from '../hot/xlog.js';
import { driveScan } from './scan.js';
import { openWalDir, type WalDirOptions } from './segments.js';
import { feedStart, scannerStart, type ScanStartOptions } from './start.js';

export type FindWalEndOptions = WalDirOptions & ScanStartOptions;

export interface WalEndResult {
  /** End of WAL: where the next record would start. */
  endLsn: Lsn;
  timeline: number;
  /** File name of the segment holding endLsn (it may not exist: e.g. right after a SWITCH). */
  segmentName: string;
  walSegSize: number;
  /** Start of the last valid record; null when no valid record was found. */
  lastRecordLsn: Lsn | null;
  /** Why the scan ended: "incomplete" when it ran out of WAL, "zero-length" at zero-filled space, "bad-crc", ... */
  stopReason: string;
  stopCode: StopReason;
  /** Where the scan started. */
  startLsn: Lsn;
  recordCount: number;
  segmentsScanned: number;
  bytesScanned: number;
  /** xlp_sysid from the first long page header read (0n if none). */
  systemId: bigint;
}

/**
 * Scan a timeline's segments from the lowest one (or `startLsn`) forward
 * through consecutive segments until the WAL ends. Throws WalDirError on bad
 * input (missing directory, no segments, a file of the wrong size, ...).
 */
export async function findWalEnd(dir: string, opts: FindWalEndOptions = {}): Promise<WalEndResult> {
  const set = await openWalDir(dir, opts);
  const start = scannerStart(set, opts);
  const scanner = new WasmWalScanner({ walSegSize: set.walSegSize, ...start });
  try {
    const progress = await driveScan(set, scanner, { fromLsn: feedStart(start.startLsn) });
    const endLsn = scanner.endLsn;
    return {
      endLsn,
      timeline: set.timeline,
      segmentName: segmentFileName(set.timeline, segmentNumber(endLsn, set.walSegSize), set.walSegSize),
      walSegSize: set.walSegSize,
      lastRecordLsn: scanner.lastRecordLsn,
      stopReason: stopReasonName(scanner.stopReason),
      stopCode: scanner.stopReason,
      startLsn: start.startLsn,
      recordCount: scanner.recordCount,
      segmentsScanned: progress.segmentsScanned,
      bytesScanned: progress.bytesScanned,
      systemId: scanner.systemId,
    };
  } finally {
    scanner.free();
  }
}
