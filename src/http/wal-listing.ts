// The WAL records of a timeline from an LSN, decoded by the wasm record
// walker. Like pg_waldump -s: a start that is not a record start is moved
// to the first record that begins at or after it (the walk begins at the
// page holding it, skips continuation data, and drops earlier records).
// Only records that end at or below `until` (the durable end) are listed.
import { segmentOffset, segmentStart, XLOG_BLCKSZ, type Lsn } from '../lsn.js';
import { stopReasonName, WasmWalScanner, type WalRecordInfo } from '../hot/xlog.js';
import { driveScan } from '../wal/scan.js';
import { openWalDir } from '../wal/segments.js';
import type { TimelineAncestry } from '../wal/timeline-files.js';

/** Page header sizes (PostgreSQL's SizeOfXLogShortPHD / SizeOfXLogLongPHD). */
const SHORT_PHD = 24;
const LONG_PHD = 40;

/** Where a record of `totLen` bytes starting at `lsn` ends in the WAL stream (page headers included, not MAXALIGNed). */
export function recordEnd(lsn: Lsn, totLen: number, walSegSize: number): Lsn {
  const page = BigInt(XLOG_BLCKSZ);
  let pos = lsn;
  let rem = BigInt(totLen);
  for (;;) {
    const pageEnd = (pos / page + 1n) * page;
    const take = rem < pageEnd - pos ? rem : pageEnd - pos;
    pos += take;
    rem -= take;
    if (rem === 0n) return pos;
    pos += BigInt(segmentOffset(pos, walSegSize) === 0 ? LONG_PHD : SHORT_PHD);
  }
}

export interface ListOptions {
  walSegSize: number;
  /** The PostgreSQL timeline and its ancestors: which file holds each segment. */
  ancestry: TimelineAncestry;
  /** First LSN of interest; default the start of the lowest local segment. */
  from?: Lsn;
  limit: number;
  /** Records must end at or below this (the durable end of WAL). */
  until: Lsn;
}

export interface ListResult {
  from: Lsn;
  records: WalRecordInfo[];
  /** Where the record after the last listed one starts (a valid `from` for the next page). */
  nextLsn: Lsn;
  /** True when `limit` records were listed (more may follow). */
  more: boolean;
  /** Why the listing ended: limit, flush_lsn (the durable end), or the walker's stop reason. */
  endReason: string;
}

/** `from` is below the first local segment. */
export class WalNotLocalError extends Error {
  override readonly name = 'WalNotLocalError';
  constructor(
    readonly from: Lsn,
    readonly firstLsn: Lsn,
  ) {
    super('WAL not on local disk');
  }
}

const BATCH = 1024;

export async function listRecords(dir: string, opts: ListOptions): Promise<ListResult> {
  const set = await openWalDir(dir, { walSegSize: opts.walSegSize, ancestry: opts.ancestry });
  const first = segmentStart(set.lowestSegno, set.walSegSize);
  const from = opts.from ?? first;
  if (from < first) throw new WalNotLocalError(from, first);
  const { limit, until } = opts;
  const pageStart = from - (from % BigInt(XLOG_BLCKSZ));
  const scanner = new WasmWalScanner({ walSegSize: set.walSegSize, startLsn: pageStart, startKind: 'page', recordCapacity: Math.min(BATCH, limit) });
  const records: WalRecordInfo[] = [];
  let cutAt: Lsn | null = null;
  const take = (): boolean => {
    for (const r of scanner.takeRecords()) {
      if (cutAt !== null || r.lsn < from) continue;
      if (records.length >= limit) continue;
      if (recordEnd(r.lsn, r.totLen, set.walSegSize) > until) {
        cutAt = r.lsn;
        continue;
      }
      records.push(r);
    }
    if (cutAt !== null || records.length >= limit) return false;
    scanner.setRecordCapacity(limit - records.length);
    return true;
  };
  try {
    if (from < until) {
      await driveScan(set, scanner, { fromLsn: pageStart, onRecordsFull: take });
      take();
    }
    const last = records.at(-1);
    const more = cutAt === null && records.length >= limit && last?.crcValid !== false;
    let nextLsn: Lsn;
    let endReason: string;
    if (cutAt !== null) {
      nextLsn = cutAt;
      endReason = 'flush_lsn';
    } else if (more) {
      nextLsn = scanner.endLsn;
      endReason = 'limit';
    } else if (from >= until) {
      nextLsn = from;
      endReason = 'flush_lsn';
    } else {
      nextLsn = last ? scanner.endLsn : from;
      endReason = last?.crcValid === false ? 'bad-crc' : stopReasonName(scanner.stopReason);
    }
    return { from, records, nextLsn, more, endReason };
  } finally {
    scanner.free();
  }
}
