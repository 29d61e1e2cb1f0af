// The end of the WAL in a safekeeper timeline directory, found again on
// every greeting and at start-up: the scan starts at the segment of the
// stored commit position when everything before it is present and complete
// (a scan from there finds the same end, without rereading old WAL), and at
// the lowest segment otherwise.
import { segmentFloor, segmentNumber, type Lsn } from '../lsn.js';
import { findWalEnd, type WalEndResult } from './wal-end.js';
import { listSegmentFiles, segmentFilesToRead } from './segment-files.js';
import type { TimelineAncestry } from './timeline-files.js';

export interface ResumeScanOptions {
  walSegSize: number;
  /** PostgreSQL timeline whose segments are read; any when absent. */
  timeline?: number;
  /** Read a timeline with its ancestors (wal/timeline-files.ts); overrides `timeline`. */
  ancestry?: TimelineAncestry;
  /** The stored commit position (0 when there is none). */
  commitLsn: Lsn;
}

/** Scan `dir` for the end of its WAL; null when it holds no segment of the timeline. */
export async function findTimelineWalEnd(dir: string, opts: ResumeScanOptions): Promise<WalEndResult | null> {
  const { walSegSize, timeline, ancestry, commitLsn } = opts;
  const mine = listSegmentFiles(dir, walSegSize).filter((f) =>
    ancestry ? f.timeline === ancestry.timelineOfSegment(f.segno, walSegSize) : timeline === undefined || f.timeline === timeline,
  );
  if (mine.length === 0) return null;
  let startLsn: Lsn | undefined;
  if (commitLsn > 0n) {
    const segno = segmentNumber(commitLsn, walSegSize);
    const toRead = segmentFilesToRead(mine, (f) => f.segno);
    const lowest = mine.reduce((m, f) => (f.segno < m ? f.segno : m), segno);
    // Complete: the file read for it is a full one.
    let contiguous = lowest < segno && toRead.has(segno);
    for (let s = lowest; contiguous && s < segno; s++) contiguous = toRead.get(s)?.partial === false;
    if (contiguous) startLsn = segmentFloor(commitLsn, walSegSize);
  }
  return findWalEnd(dir, { walSegSize, timeline, ancestry, ...(startLsn !== undefined ? { startLsn } : {}) });
}
