// The plain-TypeScript twin of assembly/xlog.ts: the same state machine, step
// for step, used as the test oracle and the benchmark baseline. Positions are
// kept as numbers relative to the (page-aligned) start, so the per-byte work
// needs no bigint; a single scan never spans 2^53 bytes.
import type { Lsn } from '../lsn.js';
import { crc32cTs } from './crc32c.js';
import { capacityFor, StopReason, validateScannerOptions, type ScannerOptions, type WalRecordInfo, type WalScanner } from './xlog.js';

const BLCKSZ = 8192;
const SHORT_PHD = 24;
const LONG_PHD = 40;
const REC_HDR = 24;
const MAX_REC_LEN = 2 ** 30;

const XLP_FIRST_IS_CONTRECORD = 0x0001;
const XLP_LONG_HEADER = 0x0002;
const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
const XLP_ALL_FLAGS = 0x000f;
const KNOWN_MAGICS = new Set([0xd106, 0xd10d, 0xd110, 0xd113, 0xd116]);

const enum Phase {
  FindFirst,
  Pad,
  RecHeader,
  RecBody,
  Done,
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

export class TsWalScanner implements WalScanner {
  private readonly segSize: number;
  /** LSN of relative position 0 (page-aligned). */
  private readonly base: Lsn;
  /** base's offset inside its segment, to find segment boundaries from relative positions. */
  private readonly baseSegOff: number;
  private pos = 0;
  private next = 0;
  private recStart = 0;
  private prevAbs: Lsn = 0n;
  private prevKnown: boolean;
  private end: number;
  private lastRec: number | null = null;
  private pageStart = 0;
  private sysid = 0n;
  private count = 0;
  private readonly hdr = new Uint8Array(REC_HDR);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly ph = new Uint8Array(LONG_PHD);
  private readonly phView = new DataView(this.ph.buffer);
  private totLen = 0;
  private got = 0;
  private crc = 0;
  private phase: Phase;
  private status = StopReason.Running;
  private inPage = false;
  private phGot = 0;
  private phLen = 0;
  private pageInfo = 0;
  private pageRem = 0;
  private lastTli = 0;
  private magic = 0;
  private readonly maxCap: number;
  private outCap: number;
  private out: WalRecordInfo[] = [];

  constructor(o: ScannerOptions) {
    validateScannerOptions(o);
    this.segSize = o.walSegSize;
    this.base = o.startLsn - (o.startLsn % BigInt(BLCKSZ));
    this.baseSegOff = Number(this.base % BigInt(o.walSegSize));
    const startRel = Number(o.startLsn - this.base);
    this.end = startRel;
    this.maxCap = this.outCap = o.recordCapacity ?? 0;
    if (o.startKind === 'page') {
      this.phase = Phase.FindFirst;
      this.prevKnown = false;
    } else {
      this.phase = Phase.Pad;
      this.next = startRel;
      this.prevAbs = o.prevLsn ?? 0n;
      this.prevKnown = this.prevAbs !== 0n;
    }
  }

  private abs(rel: number): Lsn {
    return this.base + BigInt(rel);
  }

  private stop(reason: StopReason): void {
    this.status = reason;
    this.phase = Phase.Done;
  }

  private beginRecordAt(rel: number): void {
    this.recStart = rel;
    this.got = 0;
    this.totLen = 0;
    this.phase = Phase.RecHeader;
  }

  private needsPage(): boolean {
    if (this.phase === Phase.Done) return false;
    if (this.phase === Phase.Pad) return this.next < this.pos + BLCKSZ;
    return true;
  }

  private checkShortHeader(): boolean {
    const magic = this.phView.getUint16(0, true);
    const info = this.phView.getUint16(2, true);
    if (this.magic === 0 ? !KNOWN_MAGICS.has(magic) : magic !== this.magic) {
      this.stop(StopReason.BadMagic);
      return false;
    }
    if ((info & ~XLP_ALL_FLAGS) !== 0) {
      this.stop(StopReason.BadInfoBits);
      return false;
    }
    if (info & XLP_LONG_HEADER) this.phLen = LONG_PHD;
    return true;
  }

  private checkFullHeader(): boolean {
    const v = this.phView;
    const info = v.getUint16(2, true);
    if (info & XLP_LONG_HEADER) {
      if (v.getUint32(32, true) !== this.segSize || v.getUint32(36, true) !== BLCKSZ) {
        this.stop(StopReason.BadLongHeader);
        return false;
      }
      if (this.sysid === 0n) this.sysid = v.getBigUint64(24, true);
    } else if ((this.pageStart + this.baseSegOff) % this.segSize === 0) {
      this.stop(StopReason.BadInfoBits);
      return false;
    }
    if (v.getBigUint64(8, true) !== this.abs(this.pageStart)) {
      this.stop(StopReason.BadPageAddr);
      return false;
    }
    const tli = v.getUint32(4, true);
    if (tli < this.lastTli) {
      this.stop(StopReason.BadTimeline);
      return false;
    }
    this.lastTli = tli;
    if (this.magic === 0) this.magic = v.getUint16(0, true);
    this.pageInfo = info;
    this.pageRem = v.getUint32(16, true);
    return true;
  }

  private startRecordAfterHeader(): void {
    if (this.pageInfo & XLP_FIRST_IS_CONTRECORD) this.stop(StopReason.ContrecordRequested);
    else this.beginRecordAt(this.pos);
  }

  private enterPage(): void {
    const info = this.pageInfo;
    const rem = this.pageRem;
    if (this.phase === Phase.FindFirst) {
      if (info & XLP_FIRST_IS_CONTRECORD) {
        const skip = align8(rem);
        if (skip >= BLCKSZ - this.phLen) return;
        this.next = this.pos + skip;
        this.end = this.next;
        this.phase = Phase.Pad;
      } else {
        this.next = this.pageStart;
        this.end = this.next;
        this.beginRecordAt(this.pos);
      }
    } else if (this.phase === Phase.Pad) {
      if (this.next === this.pageStart) this.startRecordAfterHeader();
      else if (this.next < this.pos) this.stop(StopReason.BadRecordOffset);
    } else if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
      this.next = this.pageStart;
      this.startRecordAfterHeader();
    } else if ((info & XLP_FIRST_IS_CONTRECORD) === 0) {
      this.stop(StopReason.NoContrecord);
    } else if (rem === 0 || rem !== this.totLen - this.got) {
      this.stop(StopReason.BadContrecordLength);
    }
  }

  private checkLength(): boolean {
    const tot = this.hdrView.getUint32(0, true);
    if (tot === 0) {
      this.stop(StopReason.ZeroLength);
      return false;
    }
    if (tot < REC_HDR || tot > MAX_REC_LEN) {
      this.stop(StopReason.BadLength);
      return false;
    }
    this.totLen = tot;
    return true;
  }

  private checkHeader(): boolean {
    const rmid = this.hdr[17];
    if (rmid > 21 && rmid < 128) {
      this.stop(StopReason.BadRmid);
      return false;
    }
    const xlPrev = this.hdrView.getBigUint64(8, true);
    if (this.prevKnown ? xlPrev !== this.prevAbs : xlPrev >= this.abs(this.recStart)) {
      this.stop(StopReason.BadPrev);
      return false;
    }
    return true;
  }

  /** Returns true to pause (record area full). */
  private finishRecord(): boolean {
    const h = this.hdr;
    const crc = crc32cTs(h.subarray(0, 20), this.crc);
    const ok = crc === this.hdrView.getUint32(20, true);
    const rmid = h[17];
    const info = h[16];
    const recAbs = this.abs(this.recStart);
    if (this.outCap > 0) {
      this.out.push({
        lsn: recAbs,
        prev: this.hdrView.getBigUint64(8, true),
        totLen: this.totLen,
        xid: this.hdrView.getUint32(4, true),
        info,
        rmid,
        crcValid: ok,
      });
    }
    if (!ok) {
      this.stop(StopReason.BadCrc);
      return false;
    }
    this.prevAbs = recAbs;
    this.prevKnown = true;
    this.lastRec = this.recStart;
    this.count++;
    let next = align8(this.pos);
    if (rmid === 0 && (info & 0xf0) === 0x40) {
      const s = this.segSize;
      next = Math.ceil((next + this.baseSegOff) / s) * s - this.baseSegOff;
    }
    this.next = next;
    this.end = next;
    this.phase = Phase.Pad;
    return this.outCap > 0 && this.out.length >= this.outCap;
  }

  feed(chunk: Uint8Array): number {
    if (this.outCap > 0 && this.out.length >= this.outCap) return 0;
    let p = 0;
    let n = chunk.length;
    while (n > 0) {
      const phase = this.phase;
      if (phase === Phase.Done) break;
      if (!this.inPage && this.pos % BLCKSZ === 0 && this.needsPage()) {
        this.inPage = true;
        this.phGot = 0;
        this.phLen = SHORT_PHD;
        this.pageStart = this.pos;
      }
      if (this.inPage) {
        const take = Math.min(n, this.phLen - this.phGot);
        this.ph.set(chunk.subarray(p, p + take), this.phGot);
        this.phGot += take;
        this.pos += take;
        p += take;
        n -= take;
        if (this.phGot === SHORT_PHD && this.phLen === SHORT_PHD && !this.checkShortHeader()) break;
        if (this.phGot < this.phLen) continue;
        this.inPage = false;
        if (!this.checkFullHeader()) break;
        this.enterPage();
        continue;
      }
      const pageLeft = BLCKSZ - (this.pos % BLCKSZ);
      if (phase === Phase.RecBody) {
        const take = Math.min(n, this.totLen - this.got, pageLeft);
        this.crc = crc32cTs(chunk.subarray(p, p + take), this.crc);
        this.got += take;
        this.pos += take;
        p += take;
        n -= take;
        if (this.got === this.totLen && this.finishRecord()) break;
      } else if (phase === Phase.RecHeader) {
        const take = Math.min(n, REC_HDR - this.got, pageLeft);
        this.hdr.set(chunk.subarray(p, p + take), this.got);
        this.got += take;
        this.pos += take;
        p += take;
        n -= take;
        if (this.totLen === 0 && this.got >= 4 && !this.checkLength()) break;
        if (this.got === REC_HDR) {
          if (!this.checkHeader()) break;
          this.crc = 0;
          if (this.totLen === REC_HDR) {
            if (this.finishRecord()) break;
          } else {
            this.phase = Phase.RecBody;
          }
        }
      } else if (phase === Phase.Pad) {
        const dist = this.next - this.pos;
        if (dist === 0) {
          this.beginRecordAt(this.pos);
          continue;
        }
        let take = Math.min(n, dist);
        if (take > pageLeft && this.next < this.pos + pageLeft + BLCKSZ) take = pageLeft;
        this.pos += take;
        p += take;
        n -= take;
      } else {
        const take = Math.min(n, pageLeft);
        this.pos += take;
        p += take;
        n -= take;
      }
    }
    return p;
  }

  takeRecords(): WalRecordInfo[] {
    const r = this.out;
    this.out = [];
    return r;
  }

  setRecordCapacity(capacity: number): void {
    if (this.maxCap === 0) return;
    if (this.out.length > 0) throw new Error('setRecordCapacity: take the pending records first');
    this.outCap = capacityFor(capacity, this.maxCap);
  }

  get stopReason(): StopReason {
    return this.status;
  }

  get stopped(): boolean {
    return this.status !== StopReason.Running;
  }

  get endLsn(): Lsn {
    return this.abs(this.end);
  }

  get lastRecordLsn(): Lsn | null {
    return this.lastRec === null ? null : this.abs(this.lastRec);
  }

  get position(): Lsn {
    return this.abs(this.pos);
  }

  get recordCount(): number {
    return this.count;
  }

  get systemId(): bigint {
    return this.sysid;
  }

  get pageTimeline(): number {
    return this.lastTli;
  }

  free(): void {
    this.out = [];
  }
}
