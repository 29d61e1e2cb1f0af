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
//   a name changed. syncNow() is the same round, blocking.
// * truncate() discards WAL from an LSN on, durably, before returning.
//
// * With `preallocate`, the next segment is made ahead, off the event loop
//   (storage/prealloc.ts). If it is not ready in time, the segment is
//   created synchronously as before; leftovers of a crash are removed when
//   the directory is opened.
//
// With `noSync` the fsyncs are skipped; names still change atomically.
import { closeSync, existsSync, fsyncSync, fdatasyncSync, openSync, readdirSync, renameSync, unlinkSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { segmentFileName, segmentNumber, segmentOffset, segmentStart, type Lsn } from '../lsn.js';
import { listSegmentFiles, PARTIAL_SUFFIX as PARTIAL, type SegmentFileEntry } from '../wal/segment-files.js';
import { fdatasyncAsync, fsyncAsync, writeFullySync } from './fsutil.js';
import { PREALLOC_PREFIX, SegmentPreallocator, ZERO_CHUNK } from './prealloc.js';

const TEMP = '.partial.tmp';

export interface WalSegmentsOptions {
  dir: string;
  walSegSize: number;
  /** PostgreSQL TimeLineID of each segment's file (wal/timeline-files.ts), or one for all. */
  timeline: number | ((segno: bigint) => number);
  noSync?: boolean;
  /** Make the next segment ahead of time in the background (the daemon turns this on). */
  preallocate?: boolean;
  /** Whether segment `segno` may be made ahead of time now (a disk cap says no when it would not fit). */
  mayPreallocate?: (segno: bigint) => boolean;
  /** Told when a background preallocation fails (the synchronous path takes over). */
  onPreallocError?: (err: Error) => void;
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

const constant = (tli: number) => (): number => tli;

/** The files of one sync round: taken when it starts, released when its fdatasyncs end. */
type SyncRound = OpenSegment[];

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
  private readonly mayPreallocate: ((segno: bigint) => boolean) | undefined;
  private tliOf: (segno: bigint) => number;
  private readonly open = new Map<bigint, OpenSegment>();
  private dirFd: number;
  /** Directory entries changed (segments created or renamed), and how many of those changes a finished fsync covers. */
  private dirChanges = 0;
  private dirChangesSynced = 0;
  private closed = false;
  private readonly prealloc: SegmentPreallocator;

  constructor(opts: WalSegmentsOptions) {
    this.dir = opts.dir;
    this.walSegSize = opts.walSegSize;
    this.tliOf = typeof opts.timeline === 'number' ? constant(opts.timeline) : opts.timeline;
    this.noSync = opts.noSync ?? false;
    this.preallocate = opts.preallocate ?? false;
    this.mayPreallocate = opts.mayPreallocate;
    this.prealloc = new SegmentPreallocator({ dir: this.dir, walSegSize: this.walSegSize, noSync: this.noSync, onError: opts.onPreallocError });
    this.dirFd = openSync(this.dir, 'r');
    this.removeTempFiles();
  }

  /** The TimeLineID of the file of segment `segno`. */
  timelineOf(segno: bigint): number {
    return this.tliOf(segno);
  }

  /**
   * Pick segment files by another rule from now on (a move to a new
   * PostgreSQL timeline). Every open segment is closed: the files the rule
   * picks may differ. The caller has made all writes durable (a truncation).
   */
  setTimeline(timeline: number | ((segno: bigint) => number)): void {
    this.tliOf = typeof timeline === 'number' ? constant(timeline) : timeline;
    for (const seg of [...this.open.values()]) this.closeSegment(seg);
  }

  /** Leftovers of a segment creation or preallocation interrupted by a crash. */
  private removeTempFiles(): void {
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith(TEMP) || f.startsWith(PREALLOC_PREFIX)) unlinkSync(join(this.dir, f));
    }
  }

  /** Segment files present in the directory with their segment numbers. */
  listFiles(): SegmentFileEntry[] {
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
    const name = segmentFileName(this.tliOf(segno), segno, this.walSegSize);
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

  /** Segments made ahead of time, used, and needed before they were ready. */
  get preallocStats(): { readonly made: number; readonly used: number; readonly missed: number } {
    return this.prealloc.stats;
  }

  /** The preallocated file for `segno`, renamed to `<name>.partial`; null when none is ready. */
  private takePreallocated(segno: bigint, name: string): number | null {
    const fd = this.prealloc.take(segno, this.tliOf(segno), name + PARTIAL);
    // Like a created segment: its name becomes durable in the next sync, before any byte in it is acknowledged.
    if (fd !== null) this.dirChanges++;
    return fd;
  }

  /** Start making segment `segno` in the background, unless it exists or is being made. */
  private preallocateNext(segno: bigint): void {
    if (!this.preallocate || this.closed || this.prealloc.busy || this.mayPreallocate?.(segno) === false) return;
    const tli = this.tliOf(segno);
    const name = segmentFileName(tli, segno, this.walSegSize);
    if (existsSync(join(this.dir, name + PARTIAL)) || existsSync(join(this.dir, name))) return;
    this.prealloc.start(segno, tli, name);
  }

  /** Resolves once no background preallocation is running (after close(), nothing of it is left). */
  settled(): Promise<void> {
    return this.prealloc.settled();
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
    this.dirChanges++;
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
    if (this.dirChanges !== this.dirChangesSynced) return true;
    for (const seg of this.open.values()) if (seg.dirty || (seg.full && seg.partial)) return true;
    return false;
  }

  /**
   * Make every write done before this call durable, and rename completed
   * segments. Writes may continue meanwhile; they are covered by the next
   * sync. Throws on an I/O error: the caller must treat the WAL as suspect.
   */
  async sync(): Promise<void> {
    const round = this.beginSync();
    try {
      if (!this.noSync) await Promise.all(round.map((s) => fdatasyncAsync(s.fd)));
    } finally {
      this.release(round);
    }
    if (this.renameCompleted(round)) {
      const changes = this.dirChanges;
      if (!this.noSync) await fsyncAsync(this.dirFd);
      this.dirSynced(changes);
    }
  }

  /**
   * sync(), blocking the event loop: every write so far is durable when this
   * returns (used before a vote or an epoch switch is persisted).
   */
  syncNow(): void {
    const round = this.beginSync();
    try {
      if (!this.noSync) for (const s of round) fdatasyncSync(s.fd);
    } finally {
      this.release(round);
    }
    if (this.renameCompleted(round)) this.fsyncDirNow();
  }

  /**
   * The segments a sync round flushes: those written since the last round,
   * those completed but not yet renamed, and those whose fdatasync another
   * round still runs (this round may not count on that one finishing first).
   */
  private beginSync(): SyncRound {
    const round: SyncRound = [];
    for (const s of this.open.values()) {
      if (!s.dirty && s.inflight === 0 && !(s.full && s.partial)) continue;
      s.dirty = false;
      s.inflight++;
      round.push(s);
    }
    return round;
  }

  private release(round: SyncRound): void {
    for (const s of round) {
      s.inflight--;
      if (s.retired && s.inflight === 0 && s.fd >= 0) {
        closeSync(s.fd);
        s.fd = -1;
      }
    }
  }

  /** After the round's data is durable: `.partial` → full name for its completed segments. True when the directory needs an fsync. */
  private renameCompleted(round: SyncRound): boolean {
    // Names change only once the data under them is durable.
    for (const s of round) {
      if (s.retired || !s.full || !s.partial) continue;
      renameSync(join(this.dir, s.name + PARTIAL), join(this.dir, s.name));
      s.partial = false;
      this.dirChanges++;
    }
    return this.dirChanges !== this.dirChangesSynced;
  }

  /** A directory fsync that started when `changes` entries had changed has finished. */
  private dirSynced(changes: number): void {
    if (changes > this.dirChangesSynced) this.dirChangesSynced = changes;
  }

  private fsyncDirNow(): void {
    const changes = this.dirChanges;
    if (!this.noSync) fsyncSync(this.dirFd);
    this.dirSynced(changes);
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
    // (A segment whose fdatasync a sync() still runs is flushed here too: that one may finish later.)
    for (const seg of this.open.values()) {
      if (seg.segno < segno && (seg.dirty || seg.inflight > 0) && !this.noSync) fdatasyncSync(seg.fd);
      if (seg.segno < segno) seg.dirty = false;
    }
    for (const seg of [...this.open.values()]) if (doomed(seg.segno)) this.closeSegment(seg);
    const files = this.listFiles()
      .filter((f) => doomed(f.segno))
      .sort((a, b) => (a.segno > b.segno ? -1 : a.segno < b.segno ? 1 : 0));
    for (const f of files) {
      unlinkSync(join(this.dir, f.file));
      this.fsyncDirNow();
    }
    if (offset > 0) {
      const name = segmentFileName(this.tliOf(segno), segno, this.walSegSize);
      const partialPath = join(this.dir, name + PARTIAL);
      const fullPath = join(this.dir, name);
      if (existsSync(fullPath)) {
        // Not complete any more: back to .partial before its tail changes
        // (when both names exist, the .partial is the one read: keep that).
        const open = this.open.get(segno);
        if (existsSync(partialPath)) unlinkSync(fullPath);
        else renameSync(fullPath, partialPath);
        if (open) open.partial = true;
        this.fsyncDirNow();
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
    if (this.dirChanges !== this.dirChangesSynced) this.fsyncDirNow();
  }

  /** Close every file (after a final sync when the caller wants one). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.prealloc.abandon();
    for (const seg of [...this.open.values()]) this.closeSegment(seg);
    closeSync(this.dirFd);
    this.dirFd = -1;
  }

  /** Start LSN of segment `segno` (for callers mapping file names back to positions). */
  segmentStart(segno: bigint): Lsn {
    return segmentStart(segno, this.walSegSize);
  }
}
