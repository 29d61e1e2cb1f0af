// The quorum proposer's WAL in memory: a contiguous window [start, end) of
// the primary's WAL, kept as the chunks it arrived in (each at most one
// XLogData, ≤ 128 KiB). Safekeepers are fed from it at their own pace; what
// falls out of the window (oldest chunks, once the quorum has them) is
// fetched from a peer safekeeper instead, so memory stays bounded however
// far one safekeeper lags.
import { formatLsn, type Lsn } from '../lsn.js';

interface Chunk {
  lsn: Lsn;
  end: Lsn;
  /** The chunk's bytes: buf[0, len). */
  buf: Uint8Array;
  len: number;
}

/** Small pieces are gathered into chunks of up to this size, so one request can carry many. */
const COALESCE = 128 * 1024;

export class WalWindow {
  private chunks: Chunk[] = [];
  private head = 0;
  private startLsn: Lsn;
  private endLsn: Lsn;
  private size = 0;

  constructor(start: Lsn) {
    this.startLsn = start;
    this.endLsn = start;
  }

  /** First position held (positions below it are gone from memory). */
  get start(): Lsn {
    return this.startLsn;
  }

  /** End of the WAL received so far. */
  get end(): Lsn {
    return this.endLsn;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.size;
  }

  /**
   * Append WAL that continues the window. Bytes before `end` (a resent
   * overlap after a reconnect) are skipped; a gap is an error.
   */
  push(lsn: Lsn, data: Uint8Array): void {
    if (lsn > this.endLsn) throw new Error(`WAL from the primary at ${formatLsn(lsn)} leaves a gap after ${formatLsn(this.endLsn)}`);
    const skip = this.endLsn - lsn;
    if (skip >= BigInt(data.length)) return;
    const part = skip > 0n ? data.subarray(Number(skip)) : data;
    const end = this.endLsn + BigInt(part.length);
    // Small pieces (a few commits each) go into the last chunk while it has room: one
    // request then carries all that arrived while the previous one was in flight.
    // Bytes already in a chunk never change, so slices handed out stay valid.
    const last = this.chunks.length > this.head ? this.chunks[this.chunks.length - 1] : undefined;
    if (last && last.buf.length - last.len >= part.length) {
      last.buf.set(part, last.len);
      last.len += part.length;
      last.end = end;
    } else if (part.length < COALESCE / 2) {
      const buf = new Uint8Array(COALESCE);
      buf.set(part, 0);
      this.chunks.push({ lsn: this.endLsn, end, buf, len: part.length });
    } else {
      this.chunks.push({ lsn: this.endLsn, end, buf: part, len: part.length });
    }
    this.endLsn = end;
    this.size += part.length;
  }

  /**
   * Up to `max` bytes starting at `from`, without copying: they come from
   * one chunk, so a call may return less than is available. null when
   * `from` is outside [start, end).
   */
  slice(from: Lsn, max: number): Uint8Array | null {
    if (from < this.startLsn || from >= this.endLsn) return null;
    // Binary search over the live chunks.
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid].lsn <= from) lo = mid;
      else hi = mid - 1;
    }
    const c = this.chunks[lo];
    const off = Number(from - c.lsn);
    return c.buf.subarray(off, Math.min(c.len, off + max));
  }

  /** Drop whole chunks that end at or before `upto`. */
  evictBefore(upto: Lsn): void {
    while (this.head < this.chunks.length && this.chunks[this.head].end <= upto) {
      const c = this.chunks[this.head++];
      this.size -= c.len;
      this.startLsn = c.end;
    }
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** Evict oldest chunks ending at or before `limit` until at most `target` bytes are held. */
  shrinkTo(target: number, limit: Lsn): void {
    while (this.size > target && this.head < this.chunks.length && this.chunks[this.head].end <= limit) {
      this.evictBefore(this.chunks[this.head].end);
    }
  }
}
