// A small WAL writer for tests: lays records out exactly as PostgreSQL does
// (page headers, long headers at segment starts, continuation flags and
// xlp_rem_len, MAXALIGN, CRC body-then-header, SWITCH), so edge cases that
// real WAL rarely shows can be built on purpose.
import { crc32cTs } from '../../src/hot/crc32c.js';

export const BLCKSZ = 8192;

export interface RecordSpec {
  rmid?: number;
  info?: number;
  xid?: number;
  body?: Uint8Array | number;
  /** Override xl_prev (default: the previous record's start). */
  prev?: bigint;
}

export class WalBuilder {
  readonly segSize: number;
  readonly start: bigint;
  tli: number;
  magic: number;
  private buf: Uint8Array;
  /** Next byte to write, relative to start. */
  pos = 0;
  prevRecord = 0n;
  lastRecord = 0n;
  /** LSN after the last complete record, MAXALIGNed (or the segment start after SWITCH). */
  end: bigint;
  /** Record starts in order. */
  readonly records: bigint[] = [];
  /** Flags forced onto the next page header written. */
  nextPageExtraInfo = 0;

  constructor(opts: { segSize?: number; start?: bigint; tli?: number; magic?: number } = {}) {
    this.segSize = opts.segSize ?? 1 << 20;
    this.start = opts.start ?? BigInt(this.segSize);
    this.tli = opts.tli ?? 1;
    this.magic = opts.magic ?? 0xd110;
    this.buf = new Uint8Array(1 << 16);
    this.end = this.start;
    if (this.start % BigInt(BLCKSZ) !== 0n) throw new Error('start must be page aligned');
  }

  lsn(rel = this.pos): bigint {
    return this.start + BigInt(rel);
  }

  private ensure(n: number): void {
    if (n <= this.buf.length) return;
    let cap = this.buf.length;
    while (cap < n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf);
    this.buf = b;
  }

  private writePageHeader(remLen: number): void {
    const lsn = this.lsn();
    const long = lsn % BigInt(this.segSize) === 0n;
    const size = long ? 40 : 24;
    this.ensure(this.pos + size);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset);
    let info = (remLen > 0 ? 1 : 0) | (long ? 2 : 0) | 4 | this.nextPageExtraInfo;
    if (this.nextPageExtraInfo & 8) info &= ~1;
    this.nextPageExtraInfo = 0;
    v.setUint16(this.pos, this.magic, true);
    v.setUint16(this.pos + 2, info, true);
    v.setUint32(this.pos + 4, this.tli, true);
    v.setBigUint64(this.pos + 8, lsn, true);
    v.setUint32(this.pos + 16, remLen, true);
    if (long) {
      v.setBigUint64(this.pos + 24, 7711761062135856216n, true);
      v.setUint32(this.pos + 32, this.segSize, true);
      v.setUint32(this.pos + 36, BLCKSZ, true);
    }
    this.pos += size;
  }

  /** Write record bytes across pages; stop early (simulating a torn write) after `limit` bytes. */
  private writeSpanning(bytes: Uint8Array, limit = bytes.length): void {
    let i = 0;
    while (i < limit) {
      if (this.pos % BLCKSZ === 0) this.writePageHeader(i === 0 ? 0 : bytes.length - i);
      const room = BLCKSZ - (this.pos % BLCKSZ);
      const n = Math.min(room, limit - i);
      this.ensure(this.pos + n);
      this.buf.set(bytes.subarray(i, i + n), this.pos);
      this.pos += n;
      i += n;
    }
  }

  /** The record's bytes with its CRC filled in. */
  encode(spec: RecordSpec): Uint8Array {
    const body = typeof spec.body === 'number' ? pattern(spec.body, this.records.length) : spec.body ?? new Uint8Array(0);
    const rec = new Uint8Array(24 + body.length);
    const v = new DataView(rec.buffer);
    v.setUint32(0, rec.length, true);
    v.setUint32(4, spec.xid ?? 0, true);
    v.setBigUint64(8, spec.prev ?? this.lastRecord, true);
    rec[16] = spec.info ?? 0;
    rec[17] = spec.rmid ?? 10;
    rec.set(body, 24);
    v.setUint32(20, crc32cTs(rec.subarray(0, 20), crc32cTs(body)), true);
    return rec;
  }

  /** Position where the next record starts (after a page header if at a page start). */
  private alignForRecord(): void {
    this.pos = Math.ceil(this.pos / 8) * 8;
  }

  append(spec: RecordSpec = {}): bigint {
    this.alignForRecord();
    const rec = this.encode(spec);
    if (this.pos % BLCKSZ === 0) this.writePageHeader(0);
    const at = this.lsn();
    this.writeSpanning(rec);
    this.records.push(at);
    this.lastRecord = at;
    this.end = this.lsn(Math.ceil(this.pos / 8) * 8);
    if ((spec.rmid ?? 10) === 0 && ((spec.info ?? 0) & 0xf0) === 0x40) {
      const seg = BigInt(this.segSize);
      const next = ((this.end + seg - 1n) / seg) * seg;
      this.pos = Number(next - this.start);
      this.ensure(this.pos);
      this.end = next;
    }
    return at;
  }

  /** Append records until the insert position passes `rel` bytes from the start. */
  fill(rel: number, size = 200): void {
    while (this.pos < rel) this.append({ body: size });
  }

  /** Write only the first `limit` bytes of a record (a torn write at the end of WAL). */
  appendTorn(spec: RecordSpec, limit: number): bigint {
    this.alignForRecord();
    const rec = this.encode(spec);
    if (this.pos % BLCKSZ === 0) this.writePageHeader(0);
    const at = this.lsn();
    this.writeSpanning(rec, limit);
    return at;
  }

  /** Move the insert position to `rel` (e.g. to pad with zeros). */
  skipTo(rel: number): void {
    this.ensure(rel);
    this.pos = rel;
  }

  /** The bytes written, padded with zeros to whole pages (or to `length`). */
  bytes(length?: number): Uint8Array {
    const n = length ?? Math.ceil(this.pos / BLCKSZ) * BLCKSZ;
    this.ensure(n);
    return this.buf.slice(0, n);
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
