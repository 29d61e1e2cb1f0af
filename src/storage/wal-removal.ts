// Removing old WAL segment files of a timeline directory, and what a
// directory's segments say about where its local WAL starts.
//
// Removal goes oldest first, one file at a time, each unlink made durable
// (a directory fsync) before the next: a crash part-way leaves a contiguous
// run of the newer segments, never a hole. Neither step needs free space.
import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { segmentStart, type Lsn } from '../lsn.js';
import { listSegmentFiles, type SegmentFileEntry } from '../wal/segment-files.js';
import type { TimelineAncestry } from '../wal/timeline-files.js';
import { fsyncDirSync } from './fsutil.js';

/** A complete segment file (no `.partial`), with when it was last written. */
export interface CompleteSegment {
  file: string;
  segno: bigint;
  /** mtime in ms: when its last byte was written (it was renamed complete right after). */
  completedAt: number;
  /** Other timelines' files of the segment (a parent's `.partial` of a switch segment): removed with it. */
  shadowed: string[];
}

function listOrNone(dir: string, walSegSize: number): SegmentFileEntry[] {
  try {
    return listSegmentFiles(dir, walSegSize);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * The segments the local WAL is made of: the contiguous run ending at the
 * highest segment present (anything below a gap is a leftover no reader can
 * reach past the gap), ascending; each segment's file is the one `ancestry`
 * picks (wal/timeline-files.ts).
 */
export function localSegmentRun(dir: string, walSegSize: number, ancestry: TimelineAncestry): SegmentFileEntry[] {
  const files = listOrNone(dir, walSegSize).filter((f) => f.timeline === ancestry.timelineOfSegment(f.segno, walSegSize));
  const bySegno = new Map<bigint, SegmentFileEntry>();
  for (const f of files) {
    const seen = bySegno.get(f.segno);
    // The .partial wins, as for every reader (wal/segment-files.ts).
    if (!seen || (f.partial && !seen.partial)) bySegno.set(f.segno, f);
  }
  const segnos = [...bySegno.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let first = segnos.length - 1;
  while (first > 0 && segnos[first - 1] === segnos[first] - 1n) first--;
  return segnos.slice(Math.max(first, 0)).map((s) => bySegno.get(s)!);
}

/** Start of the oldest local segment, or null when the directory has none. */
export function localStartLsn(dir: string, walSegSize: number, ancestry: TimelineAncestry): Lsn | null {
  const run = localSegmentRun(dir, walSegSize, ancestry);
  return run.length > 0 ? segmentStart(run[0].segno, walSegSize) : null;
}

/** The complete (renamed) segments of the local run, ascending, with their completion times. */
export function completeSegments(dir: string, walSegSize: number, ancestry: TimelineAncestry): CompleteSegment[] {
  const out: CompleteSegment[] = [];
  const run = localSegmentRun(dir, walSegSize, ancestry);
  const others = listOrNone(dir, walSegSize).filter((f) => f.timeline !== ancestry.timelineOfSegment(f.segno, walSegSize));
  for (const f of run) {
    if (f.partial) break;
    const shadowed = others.filter((o) => o.segno === f.segno).map((o) => o.file);
    try {
      out.push({ file: f.file, segno: f.segno, completedAt: statSync(join(dir, f.file)).mtimeMs, shadowed });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw err;
    }
  }
  return out;
}

/** Bytes of the regular files directly in `dir` (a timeline directory has no subdirectories). */
export function directoryBytes(dir: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const n of names) {
    try {
      const st = statSync(join(dir, n));
      if (st.isFile()) total += st.size;
    } catch {
      /* renamed or removed meanwhile */
    }
  }
  return total;
}

/**
 * Remove `segments` (ascending, oldest first) from `dir`. `before(segno)`
 * runs before each unlink: the caller moves its local start past the
 * segment there, so that no reader is sent to a file that is going.
 * Returns how many were removed; stops at the first error (thrown).
 */
export function removeSegmentsOldestFirst(dir: string, segments: readonly CompleteSegment[], before: (segno: bigint) => void, opts: { noSync?: boolean } = {}): number {
  let removed = 0;
  for (const s of segments) {
    before(s.segno);
    for (const file of [s.file, ...s.shadowed]) {
      try {
        unlinkSync(join(dir, file));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    if (!opts.noSync) fsyncDirSync(dir);
    removed++;
  }
  return removed;
}
