// Where a scan of a WAL directory begins: shared by findWalEnd and walkRecords.
import { segmentStart, XLOG_BLCKSZ, type Lsn } from '../lsn.js';
import type { ScannerOptions } from '../hot/xlog.js';
import { WalDirError } from './errors.js';
import type { WalSegmentSet } from './segments.js';

export interface ScanStartOptions {
  /**
   * Where to start. Default: the start of the timeline's lowest segment.
   * A page-aligned LSN (e.g. a segment start) without prevLsn starts like
   * pg_waldump: skip continuation data, take the first record found. Any other
   * LSN must be a record start.
   */
  startLsn?: Lsn;
  /** The record before startLsn, when known: its xl_prev is then checked exactly. */
  prevLsn?: Lsn;
}

export function scannerStart(set: WalSegmentSet, opts: ScanStartOptions): Pick<ScannerOptions, 'startLsn' | 'startKind' | 'prevLsn'> {
  const startLsn = opts.startLsn ?? segmentStart(set.lowestSegno, set.walSegSize);
  if (startLsn < 0n || startLsn >= 1n << 64n) throw new WalDirError(`start LSN ${startLsn} out of range`, 'bad-option');
  const pageAligned = startLsn % BigInt(XLOG_BLCKSZ) === 0n;
  if (opts.prevLsn === undefined && pageAligned) return { startLsn, startKind: 'page' };
  if (startLsn % 8n !== 0n) throw new WalDirError(`start LSN ${startLsn} is not 8-byte aligned, so it is no record start`, 'bad-option');
  return { startLsn, startKind: 'record', prevLsn: opts.prevLsn ?? 0n };
}

/** The scanner's first byte: the start of the page holding the start LSN. */
export function feedStart(startLsn: Lsn): Lsn {
  return startLsn - (startLsn % BigInt(XLOG_BLCKSZ));
}
