// Find the end of valid WAL in a directory of segment files: the LSN where
// PostgreSQL's reader (and pg_waldump) would stop, i.e. MAXALIGN(end of the
// last valid record), or the next segment start after an XLOG_SWITCH.
import { segmentNumber, type Lsn } from '../lsn.js';
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
 *
 * File rules: `<name>.partial` is read instead of `<name>` when both exist.
 * Every file the scan reads must be exactly one segment long, except an
 * empty `.partial` (pg_receivewal accepts 0 or a full segment too): it holds
 * no WAL yet, so the WAL ends there, as with a missing segment. Files past
 * the end are not opened, so a stray bad file there does not stop start-up.
 * With a record start that is not a page start, the segment's first page
 * header is not re-validated (PostgreSQL's reader does), because only the
 * page holding the start is read.
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
      segmentName: set.segmentName(segmentNumber(endLsn, set.walSegSize)),
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
