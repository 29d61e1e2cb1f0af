// One simulated acceptor's disk: WAL bytes as the page cache sees them
// (`visible`), what a crash would leave (`durable`), the writes in between,
// and the control file (durable when persisted). A crash keeps a random
// subset of the unsynced writes, some of them torn, as a real disk may.
import type { HistoryEntry } from '../../src/wal/history.js';
import type { Prng } from './prng.js';

/** A byte array with a length that grows on write. */
export class Bytes {
  buf = new Uint8Array(1024);
  len = 0;

  write(off: number, data: Uint8Array): void {
    const end = off + data.length;
    if (end > this.buf.length) {
      const bigger = new Uint8Array(Math.max(end, this.buf.length * 2));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(data, off);
    if (end > this.len) this.len = end;
  }

  truncate(off: number): void {
    if (off >= this.len) return;
    this.buf.fill(0, off, this.len);
    this.len = off;
  }

  copy(): Bytes {
    const c = new Bytes();
    c.buf = this.buf.slice(0, Math.max(this.len, 16));
    c.len = this.len;
    return c;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

export class SimDisk {
  visible = new Bytes();
  durable = new Bytes();
  /** Writes since the last sync, in order. */
  private pending: Array<{ off: number; data: Uint8Array }> = [];
  /** The control file as last made durable. */
  control: Buffer | null = null;
  /** A control file written but not yet synced (only an injected bug writes one). */
  controlPending: Buffer | null = null;
  /** Timeline history files by PostgreSQL timeline (durable when stored). */
  readonly histories = new Map<number, HistoryEntry[]>();
  /** Bumped whenever durable WAL changes (invalidates cached scans). */
  durableVersion = 0;

  write(off: number, data: Uint8Array): void {
    this.visible.write(off, data);
    this.pending.push({ off, data: Uint8Array.from(data) });
  }

  /** Durable at once (the real truncation zeroes and syncs). */
  truncate(off: number): void {
    this.visible.truncate(off);
    if (off < this.durable.len) {
      this.durable.truncate(off);
      this.durableVersion++;
    }
    this.pending = this.pending
      .filter((w) => w.off < off)
      .map((w) => (w.off + w.data.length > off ? { off: w.off, data: w.data.subarray(0, off - w.off) } : w));
  }

  sync(): void {
    if (this.controlPending) {
      this.control = this.controlPending;
      this.controlPending = null;
    }
    if (this.pending.length === 0) return;
    this.durable = this.visible.copy();
    this.pending = [];
    this.durableVersion++;
  }

  /** Lose the page cache: each unsynced write survives whole, torn or not at all. */
  crash(rng: Prng): void {
    for (const w of this.pending) {
      const r = rng.float();
      if (r < 0.4) continue;
      const data = r < 0.55 ? w.data.subarray(0, rng.int(0, w.data.length)) : w.data;
      this.durable.write(w.off, data);
    }
    this.pending = [];
    this.controlPending = null;
    this.durableVersion++;
    this.visible = this.durable.copy();
  }
}
