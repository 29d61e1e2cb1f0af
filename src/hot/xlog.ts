// End-of-WAL scanner and record walker: typed access to the wasm state
// machine (assembly/xlog.ts), and the interface its plain-TS twin
// (xlog-ts.ts) shares, so tests and benchmarks can swap one for the other.
import type { Lsn } from '../lsn.js';
import { WasmBuffer, wasm, type WasmExports } from './wasm.js';

/** Why a scan stopped. Numbering shared with assembly/xlog.ts. */
export enum StopReason {
  /** Still running: it wants more bytes. At the end of the input this means "incomplete". */
  Running = 0,
  /** xl_tot_len = 0: the normal end of WAL in zero-filled space. */
  ZeroLength = 1,
  /** 0 < xl_tot_len < 24, or above 1 GiB. */
  BadLength = 2,
  BadMagic = 3,
  /** Undefined xlp_info bits, or a segment's first page without a long header. */
  BadInfoBits = 4,
  /** Long header whose xlp_seg_size or xlp_xlog_blcksz is wrong. */
  BadLongHeader = 5,
  /** xlp_pageaddr is not the page's own LSN (typically a recycled segment's stale bytes). */
  BadPageAddr = 6,
  /** xlp_tli went down. */
  BadTimeline = 7,
  /** A record continues onto a page without XLP_FIRST_IS_CONTRECORD. */
  NoContrecord = 8,
  /** xlp_rem_len does not match what is left of the record. */
  BadContrecordLength = 9,
  /** A record would start where a page begins with continuation data. */
  ContrecordRequested = 10,
  BadRmid = 11,
  BadPrev = 12,
  BadCrc = 13,
  /** The configured record start lies inside a page header. */
  BadRecordOffset = 14,
}

const STOP_NAMES: Record<StopReason, string> = {
  [StopReason.Running]: 'incomplete',
  [StopReason.ZeroLength]: 'zero-length',
  [StopReason.BadLength]: 'bad-length',
  [StopReason.BadMagic]: 'bad-magic',
  [StopReason.BadInfoBits]: 'bad-info-bits',
  [StopReason.BadLongHeader]: 'bad-long-header',
  [StopReason.BadPageAddr]: 'bad-pageaddr',
  [StopReason.BadTimeline]: 'bad-timeline',
  [StopReason.NoContrecord]: 'no-contrecord',
  [StopReason.BadContrecordLength]: 'bad-contrecord-length',
  [StopReason.ContrecordRequested]: 'contrecord-requested',
  [StopReason.BadRmid]: 'bad-rmid',
  [StopReason.BadPrev]: 'bad-prev',
  [StopReason.BadCrc]: 'bad-crc',
  [StopReason.BadRecordOffset]: 'bad-record-offset',
};

/** Kebab-case name of a stop reason ("incomplete" for a scan that ran out of bytes). */
export function stopReasonName(reason: StopReason): string {
  return STOP_NAMES[reason] ?? `unknown-${reason}`;
}

/** One record as the walker reports it. */
export interface WalRecordInfo {
  lsn: Lsn;
  /** xl_tot_len: header + body, page headers not counted. */
  totLen: number;
  rmid: number;
  info: number;
  xid: number;
  /** xl_prev as stored in the record. */
  prev: Lsn;
  /** False only for the last record a walk returns: it failed its CRC and ended the scan. */
  crcValid: boolean;
}

export interface ScannerOptions {
  walSegSize: number;
  startLsn: Lsn;
  /**
   * 'page': startLsn is a page start (e.g. a segment start); continuation data
   * at the top of the page(s) is skipped and the first record found is taken.
   * 'record': startLsn is a known record start; `prevLsn` is its predecessor
   * (omit or 0 when unknown: then only "xl_prev < own LSN" is checked).
   * Either way the bytes fed begin at the page holding startLsn.
   */
  startKind: 'page' | 'record';
  prevLsn?: Lsn;
  /** Walker mode: keep up to this many records between takeRecords() calls. 0 = scan only. */
  recordCapacity?: number;
}

/** The scanner interface the wasm machine and its TS twin both implement. */
export interface WalScanner {
  /**
   * Feed the next bytes in LSN order. Returns how many were consumed: all of
   * them, unless the scan stopped or (walker mode) the record area is full —
   * then take the records and feed the rest again.
   */
  feed(chunk: Uint8Array): number;
  /** Drain the records collected so far (walker mode). */
  takeRecords(): WalRecordInfo[];
  /**
   * Walker mode: pause after this many more records (1 .. the configured
   * recordCapacity); drains nothing, so call it after takeRecords().
   */
  setRecordCapacity(capacity: number): void;
  readonly stopReason: StopReason;
  readonly stopped: boolean;
  /** End of WAL so far = MAXALIGN(end of the last valid record), or the next segment start after a SWITCH. */
  readonly endLsn: Lsn;
  /** Start of the last valid record, null when none was found. */
  readonly lastRecordLsn: Lsn | null;
  /** LSN of the next byte the scanner expects. */
  readonly position: Lsn;
  readonly recordCount: number;
  /** xlp_sysid of the first long page header seen, 0n if none. */
  readonly systemId: bigint;
  /** xlp_tli of the last page read. */
  readonly pageTimeline: number;
  free(): void;
}

export const RECORD_ENTRY_SIZE = 32;

/** Walker entry layout (wasm): lsn u64, prev u64, tot_len u32, xid u32, info u8, rmid u8, crc_ok u8. */
export function decodeRecordEntry(view: DataView, off: number): WalRecordInfo {
  return {
    lsn: view.getBigUint64(off, true),
    prev: view.getBigUint64(off + 8, true),
    totLen: view.getUint32(off + 16, true),
    xid: view.getUint32(off + 20, true),
    info: view.getUint8(off + 24),
    rmid: view.getUint8(off + 25),
    crcValid: view.getUint8(off + 26) === 1,
  };
}

/** Checks shared by both implementations; throws RangeError on a bad configuration. */
export function validateScannerOptions(o: ScannerOptions): void {
  const s = o.walSegSize;
  if (!Number.isInteger(s) || s < 1 << 20 || s > 1 << 30 || (s & (s - 1)) !== 0) {
    throw new RangeError(`invalid WAL segment size ${s}: a power of two from 1 MiB to 1 GiB`);
  }
  if (o.startLsn < 0n || o.startLsn >= 1n << 64n) throw new RangeError('start LSN out of range');
  if (o.startKind === 'page' && o.startLsn % 8192n !== 0n) throw new RangeError('a page start must be 8192-aligned');
  if (o.startKind === 'record' && o.startLsn % 8n !== 0n) throw new RangeError('a record start must be 8-aligned');
}

interface XlogExports extends WasmExports {
  xlogScannerNew(segSize: number, start: bigint, prev: bigint, kind: number): number;
  xlogScannerFree(s: number): void;
  xlogScannerSetOutput(s: number, ptr: number, cap: number): void;
  xlogScannerFeed(s: number, ptr: number, len: number): number;
  xlogScannerStatus(s: number): number;
  xlogScannerEnd(s: number): bigint;
  xlogScannerLastRecord(s: number): bigint;
  xlogScannerPosition(s: number): bigint;
  xlogScannerRecordCount(s: number): bigint;
  xlogScannerOutputCount(s: number): number;
  xlogScannerSysid(s: number): bigint;
  xlogScannerTimeline(s: number): number;
}

const COPY_CHUNK = 1 << 20;

/** The record area's next capacity: as asked, within 1 .. the configured one. */
export function capacityFor(asked: number, configured: number): number {
  return Math.max(1, Math.min(configured, Math.floor(asked)));
}

/** The wasm scanner. Bytes already in wasm memory go in through feedAt (no copy). */
export class WasmWalScanner implements WalScanner {
  private handle: number;
  private readonly w: XlogExports;
  private out: WasmBuffer | undefined;
  private outCap: number;
  private nextCap: number;
  private scratch: WasmBuffer | undefined;

  constructor(o: ScannerOptions) {
    validateScannerOptions(o);
    this.w = wasm<XlogExports>();
    this.handle = this.w.xlogScannerNew(o.walSegSize, o.startLsn, o.prevLsn ?? 0n, o.startKind === 'page' ? 0 : 1);
    if (!this.handle) throw new RangeError('invalid scanner configuration');
    this.outCap = this.nextCap = o.recordCapacity ?? 0;
    if (this.outCap > 0) {
      this.out = new WasmBuffer(this.outCap * RECORD_ENTRY_SIZE);
      this.w.xlogScannerSetOutput(this.handle, this.out.ptr, this.outCap);
    }
  }

  /** Feed `len` bytes at `ptr` in wasm memory. */
  feedAt(ptr: number, len: number): number {
    return this.w.xlogScannerFeed(this.handle, ptr, len) >>> 0;
  }

  feed(chunk: Uint8Array): number {
    this.scratch ??= new WasmBuffer(Math.min(COPY_CHUNK, Math.max(chunk.length, 1)));
    let done = 0;
    while (done < chunk.length) {
      const piece = Math.min(chunk.length - done, COPY_CHUNK);
      this.scratch.reserve(piece);
      this.scratch.view().set(chunk.subarray(done, done + piece));
      const used = this.feedAt(this.scratch.ptr, piece);
      done += used;
      if (used < piece) break;
    }
    return done;
  }

  takeRecords(): WalRecordInfo[] {
    if (!this.out) return [];
    const n = this.w.xlogScannerOutputCount(this.handle);
    const view = new DataView(this.w.memory.buffer, this.out.ptr, n * RECORD_ENTRY_SIZE);
    const records: WalRecordInfo[] = [];
    for (let i = 0; i < n; i++) records.push(decodeRecordEntry(view, i * RECORD_ENTRY_SIZE));
    this.w.xlogScannerSetOutput(this.handle, this.out.ptr, this.nextCap);
    return records;
  }

  setRecordCapacity(capacity: number): void {
    if (!this.out) return;
    const n = this.w.xlogScannerOutputCount(this.handle);
    if (n > 0) throw new Error('setRecordCapacity: take the pending records first');
    this.nextCap = capacityFor(capacity, this.outCap);
    this.w.xlogScannerSetOutput(this.handle, this.out.ptr, this.nextCap);
  }

  get stopReason(): StopReason {
    return this.w.xlogScannerStatus(this.handle) as StopReason;
  }

  get stopped(): boolean {
    return this.stopReason !== StopReason.Running;
  }

  get endLsn(): Lsn {
    return BigInt.asUintN(64, this.w.xlogScannerEnd(this.handle));
  }

  get lastRecordLsn(): Lsn | null {
    const v = BigInt.asUintN(64, this.w.xlogScannerLastRecord(this.handle));
    return v === 0n ? null : v;
  }

  get position(): Lsn {
    return BigInt.asUintN(64, this.w.xlogScannerPosition(this.handle));
  }

  get recordCount(): number {
    return Number(this.w.xlogScannerRecordCount(this.handle));
  }

  get systemId(): bigint {
    return BigInt.asUintN(64, this.w.xlogScannerSysid(this.handle));
  }

  get pageTimeline(): number {
    return this.w.xlogScannerTimeline(this.handle) >>> 0;
  }

  free(): void {
    if (this.handle) this.w.xlogScannerFree(this.handle);
    this.handle = 0;
    this.out?.dispose();
    this.scratch?.dispose();
    this.out = this.scratch = undefined;
  }
}
