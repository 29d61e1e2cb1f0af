// WAL segment files of one timeline directory.
//
// * A segment is created as `<name>.partial.tmp`, filled with zeros to its
//   full size, renamed to `<name>.partial`; the directory fsync that makes
//   the name durable happens in the next sync(), before any byte in it is
//   acknowledged.
// * write() is a plain synchronous pwrite into the preallocated file: the
//   bytes are in the page cache, not yet durable.
// * sync() makes every write done before it durable: fdatasync of each
//   segment written since the last sync (on the thread pool, so the event
//   loop keeps reading sockets), then `<name>.partial` → `<name>` for the
//   segments whose last byte has been written, then a directory fsync when
//   a name changed.
// * truncate() discards WAL from an LSN on, durably, before returning.
//
// * With `preallocate`, the next segment is made ahead, off the event loop:
//   `prealloc.<name>` is zero-filled and synced on the thread pool while
//   the current segment fills, then renamed into place when the WAL
//   reaches it. Switching segments then costs a rename instead of writing
//   (and later flushing) a whole segment of zeros in the commit path. If it
//   is not ready in time, the segment is created synchronously as before;
//   leftovers of a crash are removed when the directory is opened.
//
// With `noSync` the fsyncs are skipped; names still change atomically.
import { closeSync, existsSync, fsyncSync, fdatasyncSync, openSync, readdirSync, renameSync, unlinkSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { parseSegmentFileName, segmentFileName, segmentNumber, segmentOffset, segmentStart, type Lsn } from '../lsn.js';
import { fdatasyncAsync, fsyncAsync, openAsync, writeFullyAsync, writeFullySync } from './fsutil.js';

const PARTIAL = '.partial';
const TEMP = '.partial.tmp';
const PREALLOC = 'prealloc.';
const ZERO_CHUNK = Buffer.alloc(1 << 20);

export interface WalSegmentsOptions {
  dir: string;
  walSegSize: number;
  /** PostgreSQL TimeLineID used in new segment names. */
  timeline: number;
  noSync?: boolean;
  /** Make the next segment ahead of time in the background (the daemon turns this on). */
  preallocate?: boolean;
  /** Told when a background preallocation fails (the synchronous path takes over). */
  onPreallocError?: (err: Error) => void;
}

/** A next segment being made (or made) ahead of time. */
interface Prealloc {
  segno: bigint;
  timeline: number;
  file: string;
  fd: number;
  ready: boolean;
  /** No longer wanted: whoever finishes last closes and removes it. */
  abandoned: boolean;
}

interface OpenSegment {
  segno: bigint;
  fd: number;
  /** File name without `.partial`. */
  name: string;
  partial: boolean;
  /** Written since its last fdatasync started. */
  dirty: boolean;
  /** Its last byte has been written: rename once synced. */
  full: boolean;
  /** Removed by a truncation: close when no sync uses it any more. */
  retired: boolean;
  /** Syncs in flight using this fd. */
  inflight: number;
}

/** Segment files present in `dir`, with their segment numbers (anything else is ignored). */
export function listSegmentFiles(dir: string, walSegSize: number): Array<{ file: string; segno: bigint; partial: boolean; timeline: number }> {
  const out: Array<{ file: string; segno: bigint; partial: boolean; timeline: number }> = [];
  for (const f of readdirSync(dir)) {
    const p = parseSegmentFileName(f, walSegSize);
    if (p) out.push({ file: f, segno: p.segno, partial: p.partial, timeline: p.timeline });
  }
  return out;
}

/** Bytes of a write split at segment boundaries. */
export interface SegmentPiece {
  segno: bigint;
  offset: number;
  from: number;
  length: number;
}

/** Split a write of `length` bytes at `lsn` into per-segment pieces (segment math from lsn.ts). */
export function splitBySegment(lsn: Lsn, length: number, walSegSize: number): SegmentPiece[] {
  const pieces: SegmentPiece[] = [];
  let pos = lsn;
  let from = 0;
  while (from < length) {
    const segno = segmentNumber(pos, walSegSize);
    const offset = segmentOffset(pos, walSegSize);
    const n = Math.min(walSegSize - offset, length - from);
    pieces.push({ segno, offset, from, length: n });
    from += n;
    pos += BigInt(n);
  }
  return pieces;
}

export class WalSegments {
  readonly dir: string;
  readonly walSegSize: number;
  readonly noSync: boolean;
  readonly preallocate: boolean;
  private tli: number;
  private readonly open = new Map<bigint, OpenSegment>();
  private dirFd: number;
  private dirDirty = false;
  private closed = false;
  private prealloc: Prealloc | null = null;
  private readonly onPreallocError: ((err: Error) => void) | undefined;
  /** Background preallocations still running (close() waits for them through settled()). */
  private readonly preallocJobs = new Set<Promise<void>>();
  readonly preallocStats = { made: 0, used: 0, missed: 0 };

  constructor(opts: WalSegmentsOptions) {
    this.dir = opts.dir;
    this.walSegSize = opts.walSegSize;
    this.tli = opts.timeline;
    this.noSync = opts.noSync ?? false;
    this.preallocate = opts.preallocate ?? false;
    this.onPreallocError = opts.onPreallocError;
    this.dirFd = openSync(this.dir, 'r');
    this.removeTempFiles();
  }

  get timeline(): number {
    return this.tli;
  }

  /** Name new segments with another TimeLineID from now on (open segments keep their files). */
  setTimeline(tli: number): void {
    this.tli = tli;
  }

  /** Leftovers of a segment creation or preallocation interrupted by a crash. */
  private removeTempFiles(): void {
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith(TEMP) || f.startsWith(PREALLOC)) unlinkSync(join(this.dir, f));
    }
  }

  /** Segment files present in the directory with their segment numbers. */
  listFiles(): Array<{ file: string; segno: bigint; partial: boolean; timeline: number }> {
    return listSegmentFiles(this.dir, this.walSegSize);
  }

  /** Write `bytes` at `lsn`; may cross segment boundaries. Not durable until sync(). Throws on I/O errors. */
  write(lsn: Lsn, bytes: Uint8Array): void {
    if (this.closed) throw new Error('WAL segments already closed');
    for (const p of splitBySegment(lsn, bytes.length, this.walSegSize)) {
      const seg = this.segment(p.segno);
      writeFullySync(seg.fd, bytes.subarray(p.from, p.from + p.length), p.offset);
      seg.dirty = true;
      if (p.offset + p.length === this.walSegSize) seg.full = true;
    }
  }

  /** The open segment `segno`, opening or creating its file. */
  private segment(segno: bigint): OpenSegment {
    const have = this.open.get(segno);
    if (have && !have.retired) return have;
    const name = segmentFileName(this.tli, segno, this.walSegSize);
    let partial = true;
    let path = join(this.dir, name + PARTIAL);
    let fd: number;
    if (existsSync(path)) {
      fd = openSync(path, 'r+');
    } else if (existsSync(join(this.dir, name))) {
      partial = false;
      path = join(this.dir, name);
      fd = openSync(path, 'r+');
    } else {
      fd = this.takePreallocated(segno, name) ?? this.create(name);
    }
    // A file shorter than a segment (not made by us) is extended with zeros first.
    const size = fstatSync(fd).size;
    if (size < this.walSegSize) this.zeroFill(fd, size, this.walSegSize);
    const seg: OpenSegment = { segno, fd, name, partial, dirty: false, full: false, retired: false, inflight: 0 };
    this.open.set(segno, seg);
    this.closeOldSegments(segno);
    this.preallocateNext(segno + 1n);
    return seg;
  }

  /** The preallocated file for `segno`, renamed to `<name>.partial`; null when none is ready. */
  private takePreallocated(segno: bigint, name: string): number | null {
    const p = this.prealloc;
    if (!p) return null;
    if (!p.ready || p.segno !== segno || p.timeline !== this.tli) {
      if (p.segno <= segno || p.timeline !== this.tli) {
        // Too late or of no use any more: the synchronous path takes over.
        if (p.segno === segno) this.preallocStats.missed++;
        this.abandonPrealloc();
      }
      return null;
    }
    this.prealloc = null;
    renameSync(join(this.dir, p.file), join(this.dir, name + PARTIAL));
    // Like a created segment: its name becomes durable in the next sync, before any byte in it is acknowledged.
    this.dirDirty = true;
    this.preallocStats.used++;
    return p.fd;
  }

  /** Start making segment `segno` in the background, unless it exists or is being made. */
  private preallocateNext(segno: bigint): void {
    if (!this.preallocate || this.closed || this.prealloc) return;
    const name = segmentFileName(this.tli, segno, this.walSegSize);
    if (existsSync(join(this.dir, name + PARTIAL)) || existsSync(join(this.dir, name))) return;
    const p: Prealloc = { segno, timeline: this.tli, file: PREALLOC + name, fd: -1, ready: false, abandoned: false };
    this.prealloc = p;
    const job = this.fillPrealloc(p).finally(() => this.preallocJobs.delete(job));
    this.preallocJobs.add(job);
  }

  private async fillPrealloc(p: Prealloc): Promise<void> {
    const path = join(this.dir, p.file);
    try {
      p.fd = await openAsync(path, 'w+', 0o600);
      for (let pos = 0; pos < this.walSegSize && !p.abandoned; pos += ZERO_CHUNK.length) {
        await writeFullyAsync(p.fd, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, this.walSegSize - pos)), pos);
      }
      // Durable zeros: the first sync of the segment then flushes only the WAL written into it.
      if (!p.abandoned && !this.noSync) await fdatasyncAsync(p.fd);
      if (!p.abandoned) {
        p.ready = true;
        this.preallocStats.made++;
        return;
      }
    } catch (err) {
      if (!p.abandoned) this.onPreallocError?.(err as Error);
      if (this.prealloc === p) this.prealloc = null;
    }
    this.discardPrealloc(p);
  }

  private abandonPrealloc(): void {
    const p = this.prealloc;
    if (!p) return;
    this.prealloc = null;
    p.abandoned = true;
    // A finished one is removed now; a running one removes itself when its current step ends.
    if (p.ready) this.discardPrealloc(p);
  }

  private discardPrealloc(p: Prealloc): void {
    if (p.fd >= 0) {
      closeSync(p.fd);
      p.fd = -1;
    }
    try {
      unlinkSync(join(this.dir, p.file));
    } catch {
      /* never created, or the directory is gone */
    }
  }

  /** Resolves once no background preallocation is running (after close(), nothing of it is left). */
  async settled(): Promise<void> {
    while (this.preallocJobs.size > 0) await Promise.all([...this.preallocJobs]);
  }

  /** Create `<name>.partial` zero-filled to the segment size, through a temp name. */
  private create(name: string): number {
    const temp = join(this.dir, name + TEMP);
    const fd = openSync(temp, 'w+', 0o600);
    try {
      this.zeroFill(fd, 0, this.walSegSize);
      renameSync(temp, join(this.dir, name + PARTIAL));
    } catch (err) {
      closeSync(fd);
      try {
        unlinkSync(temp);
      } catch {
        /* ignore */
      }
      throw err;
    }
    this.dirDirty = true;
    return fd;
  }

  private zeroFill(fd: number, from: number, to: number): void {
    for (let pos = from; pos < to; ) {
      const n = Math.min(ZERO_CHUNK.length, to - pos);
      writeFullySync(fd, ZERO_CHUNK.subarray(0, n), pos);
      pos += n;
    }
  }

  /** Keep at most the current and the previous segment open; close older clean ones. */
  private closeOldSegments(current: bigint): void {
    for (const seg of this.open.values()) {
      if (seg.segno < current - 1n && !seg.dirty && seg.inflight === 0 && !(seg.full && seg.partial)) this.closeSegment(seg);
    }
  }

  private closeSegment(seg: OpenSegment): void {
    if (this.open.get(seg.segno) === seg) this.open.delete(seg.segno);
    if (seg.inflight === 0 && seg.fd >= 0) {
      closeSync(seg.fd);
      seg.fd = -1;
    } else {
      seg.retired = true;
    }
  }

  /** Whether a sync() would have anything to do. */
  get needsSync(): boolean {
    if (this.dirDirty) return true;
    for (const seg of this.open.values()) if (seg.dirty || (seg.full && seg.partial)) return true;
    return false;
  }

  /**
   * Make every write done before this call durable, and rename completed
   * segments. Writes may continue meanwhile; they are covered by the next
   * sync. Throws on an I/O error: the caller must treat the WAL as suspect.
   */
  async sync(): Promise<void> {
    const segs = [...this.open.values()].filter((s) => s.dirty || (s.full && s.partial));
    let dirDirty = this.dirDirty;
    this.dirDirty = false;
    for (const s of segs) {
      s.dirty = false;
      s.inflight++;
    }
    try {
      if (!this.noSync) await Promise.all(segs.map((s) => fdatasyncAsync(s.fd)));
    } finally {
      for (const s of segs) {
        s.inflight--;
        if (s.retired && s.inflight === 0 && s.fd >= 0) {
          closeSync(s.fd);
          s.fd = -1;
        }
      }
    }
    // Names change only once the data under them is durable.
    for (const s of segs) {
      if (s.retired || !s.full || !s.partial) continue;
      renameSync(join(this.dir, s.name + PARTIAL), join(this.dir, s.name));
      s.partial = false;
      dirDirty = true;
    }
    if (dirDirty && !this.noSync) await fsyncAsync(this.dirFd);
  }

  /**
   * Synchronous sync(): every write so far is durable when this returns.
   * Blocks the event loop (used before a vote or an epoch switch is persisted).
   */
  syncNow(): void {
    let dirDirty = this.dirDirty;
    this.dirDirty = false;
    for (const s of this.open.values()) {
      if (s.dirty) {
        s.dirty = false;
        if (!this.noSync) fdatasyncSync(s.fd);
      }
    }
    for (const s of this.open.values()) {
      if (!s.full || !s.partial) continue;
      renameSync(join(this.dir, s.name + PARTIAL), join(this.dir, s.name));
      s.partial = false;
      dirDirty = true;
    }
    if (dirDirty && !this.noSync) fsyncSync(this.dirFd);
  }

  /**
   * Discard all WAL at and after `lsn`, durably: WAL written before it is
   * synced first; then later segments are removed, highest first, so that a
   * crash part-way leaves a contiguous (shorter) run of the old WAL and never
   * a hole; then the segment holding `lsn` goes back to `.partial` and its
   * rest is zeroed. Synchronous: returns once all of it is on disk.
   */
  truncate(lsn: Lsn): void {
    const segno = segmentNumber(lsn, this.walSegSize);
    const offset = segmentOffset(lsn, this.walSegSize);
    const doomed = (n: bigint) => n > segno || (n === segno && offset === 0);
    // Everything before the cut becomes durable (the caller then counts it as synced).
    for (const seg of this.open.values()) {
      if (seg.segno < segno && seg.dirty && !this.noSync) fdatasyncSync(seg.fd);
      if (seg.segno < segno) seg.dirty = false;
    }
    for (const seg of [...this.open.values()]) if (doomed(seg.segno)) this.closeSegment(seg);
    const files = this.listFiles()
      .filter((f) => doomed(f.segno))
      .sort((a, b) => (a.segno > b.segno ? -1 : a.segno < b.segno ? 1 : 0));
    for (const f of files) {
      unlinkSync(join(this.dir, f.file));
      if (!this.noSync) fsyncSync(this.dirFd);
    }
    if (offset > 0) {
      const name = segmentFileName(this.tli, segno, this.walSegSize);
      const partialPath = join(this.dir, name + PARTIAL);
      const fullPath = join(this.dir, name);
      if (existsSync(fullPath)) {
        // Not complete any more: back to .partial before its tail changes
        // (when both names exist, readers use the .partial one: keep that).
        const open = this.open.get(segno);
        if (existsSync(partialPath)) unlinkSync(fullPath);
        else renameSync(fullPath, partialPath);
        if (open) open.partial = true;
        if (!this.noSync) fsyncSync(this.dirFd);
      }
      if (existsSync(partialPath)) {
        const seg = this.segment(segno);
        this.zeroFill(seg.fd, offset, this.walSegSize);
        if (!this.noSync) fdatasyncSync(seg.fd);
        seg.dirty = false;
        seg.full = false;
        seg.partial = true;
      }
    }
    // A new segment created before the cut may still need its directory entry synced.
    if (this.dirDirty && !this.noSync) fsyncSync(this.dirFd);
    this.dirDirty = false;
  }

  /** Close every file (after a final sync when the caller wants one). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abandonPrealloc();
    for (const seg of [...this.open.values()]) this.closeSegment(seg);
    closeSync(this.dirFd);
    this.dirFd = -1;
  }

  /** Start LSN of segment `segno` (for callers mapping file names back to positions). */
  segmentStart(segno: bigint): Lsn {
    return segmentStart(segno, this.walSegSize);
  }
}
